-- Helpers shared by the specs.
local helpers = {}

--- The command that runs this same Lua (for specs that need a fresh process).
function helpers.lua_command()
  local host = os.getenv("THREADING_LUA")
  if host and host ~= "" then
    return host
  end
  if jit then
    return "luajit"
  end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

--- Quote a string as one word for the shell.
function helpers.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Run a shell command; returns its exit status, stdout, stderr.
function helpers.command(cmd)
  local errfile = os.tmpname()
  -- the shell reports the status on a last line of its own: Lua 5.1's
  -- popen close does not return it
  local p = assert(io.popen("{ " .. cmd .. "\n} 2>" .. errfile .. "; echo \"exit status $?\"", "r"))
  local out = p:read("*a")
  p:close()
  local ef = assert(io.open(errfile, "r"))
  local err = ef:read("*a")
  ef:close()
  os.remove(errfile)
  local body, code = out:match("^(.-)exit status (%d+)\n$")
  return tonumber(code), body, err
end

--- Run a Lua chunk in a fresh interpreter; returns exit status, stdout, stderr.
-- opts.env changes the interpreter's environment: `{ NAME = "value" }` sets
-- a variable, `{ NAME = false }` removes it. opts.timeout (seconds) kills a
-- script that hangs (status 137), so that a deadlock fails the spec instead
-- of stalling the suite.
function helpers.run_script(source, opts)
  opts = opts or {}
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(source)
  f:close()
  local prefix = ""
  if opts.timeout then
    prefix = "timeout -s KILL " .. opts.timeout .. " "
  end
  if opts.env then
    local names = {}
    for name in pairs(opts.env) do
      assert(type(name) == "string" and name:match("^[%a_][%w_]*$"), "bad variable name")
      names[#names + 1] = name
    end
    table.sort(names)
    local unset, set = {}, {}     -- env takes its -u options before any assignment
    for _, name in ipairs(names) do
      if opts.env[name] == false then
        unset[#unset + 1] = "-u " .. name
      else
        set[#set + 1] = name .. "=" .. helpers.shell_quote(opts.env[name])
      end
    end
    prefix = prefix .. "env " .. table.concat(unset, " ") .. " " .. table.concat(set, " ") .. " "
  end
  local code, out, err = helpers.command(prefix .. helpers.lua_command() .. " " .. script)
  os.remove(script)
  return code, out, err
end

--- Lua source that defines `with_gc(f)`: a new value whose collection
-- calls f (a userdata on 5.1 and LuaJIT, whose tables have no __gc), for
-- scripts run with run_script.
helpers.with_gc_source = [[
  local function with_gc(f)
    if newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = f
      return p
    end
    return setmetatable({}, { __gc = f })
  end
]]

--- Wait until `n` threads are blocked on the object `obj`, as
-- threading.waits() reports it (threads block at a moment nothing can tell
-- us about); bounded, so that a bug fails instead of hanging.
function helpers.blocked_on(obj, n)
  local threading = require("threading")
  local deadline = threading.monotonic() + 60
  repeat
    local count = 0
    for _, w in ipairs(threading.waits()) do
      if w.object == obj then
        count = count + 1
      end
    end
    if count >= n then
      return true
    end
    threading.sleep(0.002)
  until threading.monotonic() > deadline
  return false
end

--- A thread that waits on `cond` (up to 10 s) and returns whether a notify
-- woke it; returns once the thread waits.
function helpers.start_cond_waiter(cond)
  local threading = require("threading")
  local t = threading.start(function(c)
    c:acquire()
    local r = c:wait(10)
    c:release()
    return r
  end, cond)
  assert(helpers.blocked_on(cond, 1), "the thread never waited on the Condition")
  return t
end

--- Deep structural equality with cycles (for transfer round trips).
function helpers.same(a, b, seen)
  if type(a) ~= type(b) then
    return false
  end
  if type(a) ~= "table" then
    if a ~= a and b ~= b then
      return true -- both NaN
    end
    return a == b
  end
  seen = seen or {}
  if seen[a] then
    return seen[a] == b
  end
  seen[a] = b
  for k, v in pairs(a) do
    if not helpers.same(v, b[k], seen) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return helpers.same(getmetatable(a), getmetatable(b), seen)
end

--- get and request of threading.http, each call made inside a task of its
-- own threading.async scheduler: the path on which a request runs on the
-- module's I/O thread and only the task waits. An error is raised again
-- without the position the task's wrapper gave it, so that a spec can
-- compare messages with those of the blocking calls.
function helpers.in_task_http(async, http)
  local unpack = table.unpack or unpack
  local function in_task(name)
    return function(...)
      local args = { n = select("#", ...), ... }
      local r = { pcall(async.run, function()
        return http[name](unpack(args, 1, args.n))
      end) }
      if not r[1] then
        local err = r[2]
        if type(err) == "string" then
          err = err:gsub("^[^:\n]+:%d+: ", "", 1)
        end
        error(err, 0)
      end
      return unpack(r, 2, table.maxn and table.maxn(r) or #r)
    end
  end
  return { get = in_task("get"), request = in_task("request") }
end

return helpers
