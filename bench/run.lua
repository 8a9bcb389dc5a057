--- bench/run.lua: run every workload in Lua and in Python, print one table.
--
-- A workload is a pair bench/<id>_<slug>.lua + bench/<id>_<slug>.py, where
-- <id> is letters, a number and an optional suffix (w1, w4t, w10). The Lua
-- file starts with `-- bench: <ID> | <description> | <target>`. Each side
-- prints one line `RESULT <value> <unit> <lower|higher>` on stdout.
--
-- A workload may name its floor, a program of bench/floor doing the same
-- work with nothing but the OS and the hardware, in a line of its header
-- comment: `-- floor: <program> [args] | <what it does>`. The first such
-- line gives the table's Floor column; any further ones are measured too
-- and listed under the table. The floor runs right after the two sides,
-- as often as they do, and prints the same RESULT line.
--
-- Environment:
--   BENCH=w3          run only the workloads whose id starts with w3
--                     (several prefixes: BENCH=w1,w3; w1_ is w1 alone)
--   BENCH_RUNS=3      run each side and floor 3 times, keep its best figure
--   BENCH_TIMEOUT     seconds before one run is stopped (default 120)
--   BENCH_FLOOR_DIR   where the floors were built (build/bench/floor)
--   BENCH_REPORT_DIR  where report.md and report.svg go (build/bench)
--   PYTHON            the Python interpreter (default python3)
--
-- The Lua side runs under the interpreter that runs this script, with this
-- script's package.path and package.cpath, so `make bench LUA=jit` compares
-- LuaJIT with Python. So does a floor written in Lua (bench/floor/*.lua).

local unpack = table.unpack or unpack

-- ---------------------------------------------------------------- helpers

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  return text
end

local function last_line(text)
  local last
  for line in text:gmatch("[^\n]+") do
    if trim(line) ~= "" then
      last = trim(line)
    end
  end
  return last
end

-- The line of a failed run's output that says what went wrong: a Lua
-- error's message sits just above "stack traceback:", Python's last.
local function error_line(text)
  local previous
  for line in text:gmatch("[^\n]+") do
    if line:find("^%s*stack traceback:") and previous then
      return previous
    end
    if trim(line) ~= "" then
      previous = trim(line)
    end
  end
  return previous
end

local function shorten(s, width)
  if #s > width then
    return s:sub(1, width - 3) .. "..."
  end
  return s
end

-- The interpreter that runs this script: the lowest index of `arg` (the
-- ones between it and 0 are interpreter options such as -e).
local function interpreter()
  local i = -1
  while arg[i - 1] ~= nil do
    i = i - 1
  end
  return arg[i] or "lua"
end

local function script_dir()
  local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$")
  return dir or "."
end

-- dir/../name as name where dir is one plain directory ("bench/../build").
local function tidy_path(path)
  local dir, rest = path:match("^([^/]+)/%.%./(.*)$")
  if dir and dir ~= "." and dir ~= ".." then
    return rest
  end
  return path
end

local function have_command(name)
  local p = io.popen("command -v " .. shell_quote(name) .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return trim(out) ~= ""
end

-- ---------------------------------------------------------------- discovery

-- Split a file name into (id, number, suffix, slug, ext), or nil.
local function parse_name(name)
  local letters, number, suffix, slug, ext =
    name:match("^(%a+)(%d+)(%a*)_([%w_%-]+)%.(%a+)$")
  if not letters or (ext ~= "lua" and ext ~= "py") then
    return nil
  end
  return letters .. number .. suffix, tonumber(number), suffix, slug, ext
end

-- BENCH may hold one prefix or several separated by commas or spaces. A
-- prefix selects the workloads whose id starts with it (w1 selects w1 and
-- w10..w19) or whose <id>_<slug> does (w1_ selects w1 alone).
local function selected(id, slug, filter)
  if not filter or trim(filter) == "" then
    return true
  end
  local name = (id .. "_" .. slug):lower()
  for prefix in filter:gmatch("[^,%s]+") do
    prefix = prefix:lower()
    if id:lower():sub(1, #prefix) == prefix or name:sub(1, #prefix) == prefix then
      return true
    end
  end
  return false
end

local function split_bars(fields)
  local parts = {}
  for part in (fields .. "|"):gmatch("([^|]*)|") do
    parts[#parts + 1] = trim(part)
  end
  return parts
end

-- The fields of the `-- bench:` line, and the floors of the header comment
-- (the comment lines at the top of the file) as a list of
-- {command = "<program> [args]", label = "<what it does>"}.
local function read_header(path)
  local f = io.open(path, "r")
  if not f then
    return nil
  end
  local first = f:read("*l") or ""
  local floors = {}
  for line in f:lines() do
    if not line:find("^%-%-") then
      break
    end
    local spec = line:match("^%-%-%s*floor:%s*(.-)%s*$")
    if spec then
      local parts = split_bars(spec)
      if parts[1] ~= "" then
        floors[#floors + 1] = { command = parts[1], label = parts[2] or "" }
      end
    end
  end
  f:close()
  local fields = first:match("^%-%-%s*bench:%s*(.*)$")
  if not fields then
    return nil, floors
  end
  return split_bars(fields), floors
end

local function find_workloads(dir, filter)
  local p = io.popen("ls -1 " .. shell_quote(dir) .. " 2>/dev/null")
  local by_key = {}
  local list = {}
  for name in p:lines() do
    local id, number, suffix, slug, ext = parse_name(name)
    if id and selected(id, slug, filter) then
      local key = id .. "_" .. slug
      local w = by_key[key]
      if not w then
        w = { id = id, number = number, suffix = suffix, slug = slug }
        by_key[key] = w
        list[#list + 1] = w
      end
      w[ext] = dir .. "/" .. name
    end
  end
  p:close()
  table.sort(list, function(a, b)
    if a.number ~= b.number then
      return a.number < b.number
    end
    if a.suffix ~= b.suffix then
      return a.suffix < b.suffix
    end
    return a.slug < b.slug
  end)
  for _, w in ipairs(list) do
    local header, floors
    if w.lua then
      header, floors = read_header(w.lua)
    end
    w.floors = floors or {}
    w.label = header and header[1] ~= "" and header[1] or w.id:upper()
    w.description = header and header[2] or w.slug:gsub("_", " ")
    w.target = header and header[3] or ""
  end
  return list
end

-- ---------------------------------------------------------------- running

local TIMEOUT = tonumber(os.getenv("BENCH_TIMEOUT")) or 120
local timeout_prefix = have_command("timeout")
    and ("timeout -k 5 " .. TIMEOUT .. " ")
  or ""

-- Run one side once: returns {value=, unit=, lower=} or nil, error text.
local function run_once(command)
  local errfile = os.tmpname()
  local p = io.popen(timeout_prefix .. command .. " 2>" .. shell_quote(errfile)
    .. " </dev/null; echo \"EXIT-STATUS $?\"")
  local out = p:read("*a")
  p:close()
  local err = read_file(errfile) or ""
  os.remove(errfile)
  local status = tonumber(out:match("EXIT%-STATUS (%d+)%s*$"))
  out = out:gsub("EXIT%-STATUS %d+%s*$", "")
  local value, unit, dir, bad
  local count = 0
  for line in out:gmatch("[^\n]+") do
    if line:find("^RESULT") then
      count = count + 1
      local v, u, d = line:match("^RESULT%s+(%S+)%s+(%S+)%s+(%a+)%s*$")
      value, unit, dir = tonumber(v), u, d
      if not value or (dir ~= "lower" and dir ~= "higher") then
        bad = line
      end
    end
  end
  if status ~= 0 then
    local why = error_line(err) or last_line(out)
    if status == 124 or status == 137 then
      why = "timed out after " .. TIMEOUT .. " s"
    end
    return nil, "exit " .. tostring(status) .. (why and (": " .. why) or "")
  end
  if count > 1 then
    return nil, count .. " RESULT lines (one expected)"
  elseif bad then
    return nil, "bad RESULT line: " .. bad
  elseif count == 0 then
    local why = error_line(err)
    return nil, "no RESULT line" .. (why and (": " .. why) or "")
  end
  return { value = value, unit = unit, lower = dir == "lower" }
end

local function better(r, best)
  if not best then
    return true
  end
  if r.lower then
    return r.value < best.value
  end
  return r.value > best.value
end

-- Run one side `runs` times and keep its best result.
local function run_side(command, runs)
  local best, err
  for _ = 1, runs do
    local r, e = run_once(command)
    if r and better(r, best) then
      best = r
    elseif not r then
      err = e
    end
  end
  if best then
    return best
  end
  return nil, err
end

-- ---------------------------------------------------------------- floors

-- The name the Makefile's LUA gives this interpreter (5.1 .. 5.4, jit):
-- the floors that hold Lua are built in build/bench/floor/<that name>.
local function lua_tag()
  if jit then
    return "jit"
  end
  return _VERSION:match("%d+%.%d+") or "?"
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

-- The shell command that runs one floor, "<program> [args]", or nil and
-- why not. bench/floor/<program>.lua runs under this interpreter with the
-- floors built for it on package.cpath; any other program is an
-- executable built for this Lua or for all.
local function floor_command(spec, ctx)
  local name, args = nil, {}
  for word in spec:gmatch("%S+") do
    if name then
      args[#args + 1] = " " .. shell_quote(word)
    else
      name = word
    end
  end
  if not name or not name:find("^[%w_%-]+$") then
    return nil, "bad floor program: " .. tostring(name)
  end
  args = table.concat(args)
  local own = ctx.floor_dir .. "/" .. lua_tag()
  local script = ctx.bench_dir .. "/floor/" .. name .. ".lua"
  if file_exists(script) then
    if not file_exists(own) then
      return nil, name .. ": no floors built for this Lua in " .. own .. " (make bench builds them)"
    end
    return ctx.env_with_cpath(own .. "/?.so;" .. package.cpath)
      .. shell_quote(ctx.lua) .. " " .. shell_quote(script) .. args
  end
  for _, dir in ipairs({ own, ctx.floor_dir }) do
    if file_exists(dir .. "/" .. name) then
      return shell_quote(dir .. "/" .. name) .. args
    end
  end
  return nil, name .. " is not built (make bench builds the floors)"
end

-- ---------------------------------------------------------------- table

local function figure(x)
  local a = math.abs(x)
  if a == 0 then
    return "0"
  elseif a >= 1000 then
    return string.format("%.0f", x)
  elseif a >= 100 then
    return string.format("%.1f", x)
  elseif a >= 1 then
    return string.format("%.2f", x)
  end
  return string.format("%.3g", x)
end

-- How many times better Lua is than Python: >1 is better.
local function advantage(lua, py)
  if lua.lower then
    return lua.value > 0 and py.value / lua.value or nil
  end
  return py.value > 0 and lua.value / py.value or nil
end

local function ratio_text(k)
  if not k then
    return "n/a"
  end
  -- two decimals near 1, where one would print 1.0x either way
  local fmt = (k > 0.95 and k < 1.05) and "%.2fx" or "%.1fx"
  if k >= 1 then
    return string.format(fmt .. " better", k)
  end
  return string.format(fmt .. " (worse)", k)
end

-- A verdict for the targets written in the forms the workloads use:
--   "<= 1/3 of Python", "<= 0.5x Python", "no slower than Python",
--   ">= 1.8", "<= 32 KiB". Anything else gets no verdict.
local function verdict(target, lua, py)
  local t = target:lower()
  local k = py and advantage(lua, py)
  if t:find("python") then
    if not k then
      return ""
    end
    if t:find("no slower") or t:find("no worse") or t:find("at least as") then
      return k >= 1 and "yes" or "NO"
    end
    local num, den = t:match("(%d+%.?%d*)%s*/%s*(%d+%.?%d*)")
    local share = num and tonumber(num) / tonumber(den)
      or tonumber(t:match("(%d+%.?%d*)%s*x"))
    if share and share > 0 then
      -- "1/3 of Python's time" (a share below 1 of a lower-is-better
      -- figure) asks for k >= 3; "5x Python" or "0.8x Python" of a
      -- higher-is-better figure asks for k >= 5 or k >= 0.8
      local need = (lua.lower and share < 1) and 1 / share or share
      return k >= need - 1e-9 and "yes" or "NO"
    end
    return ""
  end
  local op, limit = t:match("^%s*([<>]=?)%s*(%d+%.?%d*)")
  limit = tonumber(limit)
  if not limit then
    return ""
  end
  local v = lua.value
  local ok = (op == "<=" and v <= limit) or (op == "<" and v < limit)
    or (op == ">=" and v >= limit) or (op == ">" and v > limit)
  return ok and "yes" or "NO"
end

-- How many times the floor's cost Lua's figure is (1: at the floor): Lua's
-- figure over the floor's where lower is better, the floor's over Lua's
-- where higher is.
local function over_floor(lua, fl)
  if lua.lower then
    return fl.value > 0 and lua.value / fl.value or nil
  end
  return lua.value > 0 and fl.value / lua.value or nil
end

local function times_text(k)
  if not k then
    return "n/a"
  end
  local fmt = (k > 0.95 and k < 1.05) and "%.2fx" or (k >= 100 and "%.0fx" or "%.1fx")
  return string.format(fmt, k)
end

local NONE = "–" -- no figure of this kind for this workload

-- The width of s on a terminal: UTF-8 continuation bytes take no column.
local function text_width(s)
  return #s - select(2, s:gsub("[\128-\191]", ""))
end

local COLUMNS = {
  { "ID" }, { "Workload" }, { "Lua", right = true }, { "Python", right = true },
  { "Unit" }, { "Lua vs Python" }, { "Floor", right = true }, { "Lua / floor", right = true },
  { "Target" }, { "Met" },
}

local function print_table(rows)
  local width = {}
  for i, c in ipairs(COLUMNS) do
    width[i] = text_width(c[1])
  end
  for _, row in ipairs(rows) do
    for i = 1, #COLUMNS do
      width[i] = math.max(width[i], text_width(row.cells[i] or ""))
    end
  end
  local function line(cells, note)
    local out = {}
    for i, c in ipairs(COLUMNS) do
      local cell = cells[i] or ""
      local pad = string.rep(" ", width[i] - text_width(cell))
      out[i] = c.right and (pad .. cell) or (cell .. pad)
    end
    local text = table.concat(out, "  ")
    if note then
      text = text .. "  " .. note
    end
    print((text:gsub("%s+$", "")))
  end
  local header, rule = {}, {}
  for i, c in ipairs(COLUMNS) do
    header[i] = c[1]
    rule[i] = string.rep("-", width[i])
  end
  line(header)
  line(rule)
  for _, row in ipairs(rows) do
    line(row.cells, row.note)
  end
end

-- One line per floor measured: the row's own first, then the others.
local function floor_lines(rows)
  local lines = {}
  for _, row in ipairs(rows) do
    for i, fl in ipairs(row.floors) do
      local r = fl.result
      lines[#lines + 1] = {
        id = row.cells[1], own = i == 1, command = fl.command, label = fl.label,
        text = r and (figure(r.value) .. " " .. r.unit) or ("failed: " .. (fl.err or "?")),
      }
    end
  end
  return lines
end

local function print_floors(rows)
  local lines = floor_lines(rows)
  if #lines == 0 then
    return
  end
  print("")
  print("Floors (bench/floor), measured in this run; * marks the one in the Floor column:")
  local w1, w2, w3 = 0, 0, 0
  for _, l in ipairs(lines) do
    w1 = math.max(w1, text_width(l.id))
    w2 = math.max(w2, text_width(l.command))
    w3 = math.max(w3, text_width(l.text))
  end
  for _, l in ipairs(lines) do
    print((string.format("  %s%s %s  %s  %s  %s", l.own and "*" or " ", l.id,
      string.rep(" ", w1 - text_width(l.id)), l.command .. string.rep(" ", w2 - text_width(l.command)),
      l.text .. string.rep(" ", w3 - text_width(l.text)), l.label):gsub("%s+$", "")))
  end
end

-- The 1-minute load average, or nil where /proc/loadavg does not exist.
local function load_average()
  local text = read_file("/proc/loadavg")
  return text and tonumber(text:match("^(%S+)"))
end

local function command_output(command)
  local p = io.popen(command .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out
end

-- The number of CPUs online, as nproc says.
local function cpu_count()
  return tonumber(command_output("nproc"):match("%d+"))
    or tonumber(command_output("getconf _NPROCESSORS_ONLN"):match("%d+"))
end

-- ---------------------------------------------------------------- report

local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return true
end

local function md_cell(s)
  return (s:gsub("|", "\\|"))
end

-- The table, the floors and the run's circumstances in Markdown.
local function report_markdown(rows, meta)
  local out = {}
  local function add(s)
    out[#out + 1] = s or ""
  end
  add("# Benchmark report")
  add()
  add(string.format("%s against %s, %s; %s CPUs (`nproc`), load average %s before and %s after.",
    meta.lua, meta.python, meta.date, meta.cpus or "?", meta.load_before, meta.load_after))
  add()
  add("The figures come from one run on a noisy machine (other work shares its CPUs). Each is the")
  add(string.format("best of the rounds one process measures, per side and per floor%s. A difference",
    meta.runs > 1 and string.format(", and the best of %d such processes", meta.runs) or ""))
  add("the next run does not repeat is noise. What each workload and each floor measures:")
  add("[bench/README.md](../../bench/README.md).")
  add()
  local header, rule = {}, {}
  for i, c in ipairs(COLUMNS) do
    header[i] = c[1]
    rule[i] = c.right and "---:" or "---"
  end
  add("| " .. table.concat(header, " | ") .. " |")
  add("|" .. table.concat(rule, "|") .. "|")
  for _, row in ipairs(rows) do
    local cells = {}
    for i = 1, #COLUMNS do
      cells[i] = md_cell(row.cells[i] or "")
    end
    add("| " .. table.concat(cells, " | ") .. " |")
  end
  local notes = {}
  for _, row in ipairs(rows) do
    if row.note then
      notes[#notes + 1] = "- " .. row.cells[1] .. ": " .. md_cell(row.note:gsub("^!%s*", ""))
    end
  end
  if #notes > 0 then
    add()
    add("Failures:")
    add()
    for _, n in ipairs(notes) do
      add(n)
    end
  end
  local lines = floor_lines(rows)
  if #lines > 0 then
    add()
    add("Floors measured in this run (bench/floor); the first of each workload is its Floor column:")
    add()
    add("| ID | floor | figure | what it does |")
    add("|---|---|---:|---|")
    for _, l in ipairs(lines) do
      add(string.format("| %s | `%s`%s | %s | %s |", l.id, l.command, l.own and "" or " (extra)",
        md_cell(l.text), md_cell(l.label)))
    end
  end
  add()
  add("![Each workload's cost relative to Python's, ours, Python's and the floor's](report.svg)")
  add()
  return table.concat(out, "\n")
end

local function xml(s)
  return (s:gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- What a figure costs, the same way up for every unit: the figure where
-- lower is better, its inverse where higher is.
local function cost(r)
  if r.lower then
    return r.value
  end
  return r.value > 0 and 1 / r.value or nil
end

-- A ratio on the chart's axis, with two significant digits.
local function axis_text(k)
  if k >= 10 then
    return string.format("%.0fx", k)
  elseif k >= 0.1 then
    return string.format("%.2fx", k)
  end
  return string.format("%.2gx", k)
end

local function log10(x)
  return math.log(x) / math.log(10)
end

-- A horizontal bar chart of the table: one group per workload, a bar each
-- for ours, Python's and the floor's cost over Python's on a log axis.
local function report_svg(rows, meta)
  local BAR, GAP, GROUP_GAP = 11, 2, 12
  -- a white outline under a bar's label keeps it readable across grid lines
  local HALO = ' stroke="#ffffff" stroke-width="3" paint-order="stroke"'
  local LABEL_W, PLOT_W, VALUE_W = 370, 420, 210
  local X0 = LABEL_W + 10
  local TOP = 96
  local series = {
    { key = "lua", name = meta.lua .. " with threading", color = "#1f77b4" },
    { key = "py", name = meta.python, color = "#ff7f0e" },
    { key = "floor", name = "floor (C, bench/floor)", color = "#7f7f7f" },
  }
  -- each group's bars: the ratio to Python's cost, or why there is none
  local groups, lo, hi = {}, 1, 1
  for _, row in ipairs(rows) do
    local g = { row = row, ratio = {}, why = {} }
    local py = row.py
    local base = py and cost(py)
    for _, s in ipairs(series) do
      local r = row[s.key]
      local c = r and cost(r)
      if not r then
        g.why[s.key] = (s.key ~= "floor" or #row.floors > 0) and "failed" or nil
      elseif not py then
        g.why[s.key] = "no Python figure to compare with"
      elseif r.unit ~= py.unit or r.lower ~= py.lower then
        g.why[s.key] = "not in Python's unit"
      elseif not (base and base > 0) then
        g.why[s.key] = "Python's figure is 0: no ratio"
      elseif not (c and c > 0) then
        g.why[s.key] = "0, off the log scale"
      else
        g.ratio[s.key] = c / base
        lo = math.min(lo, c / base)
        hi = math.max(hi, c / base)
      end
    end
    groups[#groups + 1] = g
  end
  -- whole decades, with room below the shortest bar so that it shows
  local dlo, dhi = math.floor(log10(lo) - 0.3), math.ceil(log10(hi) - 1e-9)
  if dhi <= dlo then
    dhi = dlo + 1
  end
  local function x_of(ratio)
    return X0 + (log10(ratio) - dlo) / (dhi - dlo) * PLOT_W
  end
  local group_h = 3 * BAR + 2 * GAP + GROUP_GAP
  local plot_h = #groups * group_h
  local width = X0 + PLOT_W + VALUE_W
  local height = TOP + plot_h + 40
  local out = {}
  local function add(s)
    out[#out + 1] = s
  end
  add('<?xml version="1.0" encoding="UTF-8"?>')
  add(string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"'
    .. ' font-family="sans-serif" font-size="12">', width, height, width, height))
  add("<title>" .. xml("threading benchmarks: " .. meta.lua .. ", " .. meta.python
    .. " and the floor, " .. meta.date) .. "</title>")
  add(string.format('<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>', width, height))
  add(string.format('<text x="10" y="20" font-size="14" font-weight="bold">%s</text>',
    xml("threading benchmarks, " .. meta.date
      .. ": cost relative to Python's (log scale, shorter is better)")))
  add(string.format('<text x="10" y="38" fill="#444444">%s</text>', xml("Bar length: the figure over "
    .. "Python's (for a rate or a speed-up, Python's over the figure); one run, "
    .. (meta.cpus or "?") .. " CPUs, noisy machine.")))
  local lx = 10
  for _, s in ipairs(series) do
    add(string.format('<rect x="%d" y="50" width="12" height="12" fill="%s"/>', lx, s.color))
    add(string.format('<text x="%d" y="60">%s</text>', lx + 16, xml(s.name)))
    lx = lx + 16 + 7 * #s.name + 24
  end
  -- decades: grid lines and their labels, at the top and the bottom
  for d = dlo, dhi do
    local x = x_of(10 ^ d)
    local label = d >= 0 and string.format("%.0fx", 10 ^ d) or string.format("%." .. -d .. "fx", 10 ^ d)
    add(string.format('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1"%s/>',
      x, TOP - 6, x, TOP + plot_h, d == 0 and "#333333" or "#dddddd",
      d == 0 and ' stroke-dasharray="4 3"' or ""))
    add(string.format('<text x="%.1f" y="%d" text-anchor="middle" fill="#444444">%s</text>',
      x, TOP - 9, label))
    add(string.format('<text x="%.1f" y="%d" text-anchor="middle" fill="#444444">%s</text>',
      x, TOP + plot_h + 16, label))
  end
  for i, g in ipairs(groups) do
    local y = TOP + (i - 1) * group_h + GROUP_GAP / 2
    local row = g.row
    add(string.format('<text x="%d" y="%.1f" text-anchor="end" font-weight="bold">%s</text>',
      LABEL_W, y + BAR + 4, xml(row.cells[1])))
    add(string.format('<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="#444444">%s</text>',
      LABEL_W, y + 2 * BAR + GAP + 4, xml(shorten(row.w.description, 60))))
    for j, s in ipairs(series) do
      local by = y + (j - 1) * (BAR + GAP)
      local r, ratio = row[s.key], g.ratio[s.key]
      local text
      if ratio then
        local x1 = x_of(ratio)
        add(string.format('<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"/>',
          X0, by, math.max(1, x1 - X0), BAR, s.color))
        text = figure(r.value) .. " " .. r.unit
        if s.key ~= "py" then
          text = text .. " (" .. axis_text(ratio) .. ")"
        end
        add(string.format('<text x="%.1f" y="%.1f" font-size="10"%s>%s</text>',
          x1 + 4, by + BAR - 1, HALO, xml(text)))
      elseif g.why[s.key] then
        text = s.key .. ": " .. (r and (figure(r.value) .. " " .. r.unit .. " (" .. g.why[s.key] .. ")")
          or g.why[s.key])
        add(string.format('<text x="%d" y="%.1f" font-size="10" fill="#aa0000"%s>%s</text>',
          X0 + 4, by + BAR - 1, HALO, xml(text)))
      end
    end
  end
  add("</svg>")
  add("")
  return table.concat(out, "\n")
end

-- build/bench/report.md and report.svg (or BENCH_REPORT_DIR's). They are
-- committed (make bench-report): a failure's message names files relative
-- to the working directory, not where this checkout happens to be.
local function write_reports(rows, meta, dir)
  os.execute("mkdir -p " .. shell_quote(dir))
  local cwd = trim(command_output("pwd"))
  for _, item in ipairs({ { "report.md", report_markdown }, { "report.svg", report_svg } }) do
    local path = dir .. "/" .. item[1]
    local text = item[2](rows, meta)
    if cwd ~= "" and cwd ~= "/" then
      text = text:gsub(cwd:gsub("%p", "%%%0") .. "/", "")
    end
    local ok, err = write_file(path, text)
    if ok then
      io.stderr:write("bench: wrote ", path, "\n")
    else
      io.stderr:write("bench: cannot write ", path, ": ", tostring(err), "\n")
    end
  end
end

-- ---------------------------------------------------------------- main

local function show(r)
  return r and (figure(r.value) .. " " .. r.unit) or "failed"
end

-- Run one command `runs` times with a progress line on stderr.
local function measure(id, what, command, runs)
  io.stderr:write(string.format("  %-6s %-6s ...", id, what))
  io.stderr:flush()
  local t0 = os.time()
  local r, err = run_side(command, runs)
  io.stderr:write(string.format(" %s (%d s)\n", show(r), os.time() - t0))
  return r, err
end

local function main()
  local dir = script_dir()
  local filter = os.getenv("BENCH")
  local runs = math.max(1, math.floor(tonumber(os.getenv("BENCH_RUNS")) or 1))
  local python = os.getenv("PYTHON") or "python3"
  local lua = interpreter()
  -- the paths this script was given, spelled out so the workloads get them
  -- even when they came from LUA_PATH_5_x or from the interpreter's defaults
  -- (the versioned variables are removed: set, even empty, they would win)
  local function env_with_cpath(cpath)
    return "env -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4"
      .. " -u LUA_CPATH_5_2 -u LUA_CPATH_5_3 -u LUA_CPATH_5_4"
      .. " LUA_PATH=" .. shell_quote(package.path)
      .. " LUA_CPATH=" .. shell_quote(cpath) .. " "
  end
  local env = env_with_cpath(package.cpath)
  local ctx = {
    lua = lua, bench_dir = dir, env_with_cpath = env_with_cpath,
    floor_dir = os.getenv("BENCH_FLOOR_DIR") or tidy_path(dir .. "/../build/bench/floor"),
  }
  local report_dir = os.getenv("BENCH_REPORT_DIR") or tidy_path(dir .. "/../build/bench")

  local workloads = find_workloads(dir, filter)
  if #workloads == 0 then
    io.stderr:write("bench: no workloads in ", dir,
      filter and (" matching " .. filter) or "", "\n")
    os.exit(1)
  end
  local version = jit and jit.version or _VERSION
  io.stderr:write(string.format("bench: %d workload(s), %s vs %s, best of %d run(s)\n",
    #workloads, version, python, runs))

  local load_before = load_average()
  local rows = {}
  for _, w in ipairs(workloads) do
    local results, errors = {}, {}
    local sides = {
      { "lua", w.lua and (env .. shell_quote(lua) .. " " .. shell_quote(w.lua)) },
      -- PYTHON is a command line, so it may carry options ("python3 -X dev")
      { "py", w.py and (python .. " " .. shell_quote(w.py)) },
    }
    for _, side in ipairs(sides) do
      local name, command = unpack(side)
      if not command then
        errors[#errors + 1] = name .. ": no ." .. name .. " file"
      else
        local r, err = measure(w.id, name, command, runs)
        results[name] = r
        if not r then
          errors[#errors + 1] = name .. ": " .. err
        end
      end
    end
    -- the floors, right after the sides, so they see the same machine
    local floors = {}
    for i, spec in ipairs(w.floors) do
      local fl = { command = spec.command, label = spec.label }
      local command, err = floor_command(spec.command, ctx)
      if command then
        fl.result, fl.err = measure(w.id, i == 1 and "floor" or "+floor", command, runs)
      else
        fl.err = err
        io.stderr:write(string.format("  %-6s %-6s ... %s\n", w.id, "floor", err))
      end
      floors[i] = fl
    end
    local l, p = results.lua, results.py
    local f = floors[1] and floors[1].result
    local unit = (l and l.unit) or (p and p.unit) or ""
    local ratio, met = "-", ""
    if l and p then
      if l.unit ~= p.unit or l.lower ~= p.lower then
        errors[#errors + 1] = "units differ: " .. l.unit .. " vs " .. p.unit
      else
        ratio = ratio_text(advantage(l, p))
      end
    end
    if l and #errors == 0 then
      met = verdict(w.target, l, p)
    end
    local floor_cell, floor_ratio = NONE, NONE
    if floors[1] and not f then
      floor_cell = "failed"
      errors[#errors + 1] = "floor: " .. floors[1].err
    elseif f and l and (f.unit ~= l.unit or f.lower ~= l.lower) then
      floor_cell = figure(f.value) .. " " .. f.unit
      errors[#errors + 1] = "floor's unit differs: " .. f.unit .. " vs " .. l.unit
    elseif f then
      floor_cell = figure(f.value)
      floor_ratio = l and times_text(over_floor(l, f)) or "-"
    end
    local row = {
      w = w, lua = l, py = p, floor = f, floors = floors,
      cells = {
        w.label, w.description,
        l and figure(l.value) or "failed",
        p and figure(p.value) or "failed",
        unit, ratio, floor_cell, floor_ratio, w.target, met,
      },
    }
    if #errors > 0 then
      row.note = "! " .. shorten(table.concat(errors, "; "), 160)
    end
    rows[#rows + 1] = row
  end
  print_table(rows)
  print_floors(rows)
  -- other work on the machine moves the figures: say how busy it was
  local load_after, cpus = load_average(), cpu_count()
  if load_before and load_after then
    print(string.format("(%s, %s CPUs, load average %.2f before and %.2f after)",
      version, cpus or "?", load_before, load_after))
  end
  local py_version = trim(command_output(python .. " --version"))
  write_reports(rows, {
    lua = version,
    python = py_version ~= "" and py_version or python,
    date = os.date("!%Y-%m-%d %H:%M UTC"),
    cpus = cpus, runs = runs,
    load_before = load_before and string.format("%.2f", load_before) or "?",
    load_after = load_after and string.format("%.2f", load_after) or "?",
  }, report_dir)
end

main()
