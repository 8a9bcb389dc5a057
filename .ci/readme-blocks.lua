--- Extracts the shell blocks of one README section, for .ci/readme-install.
--
--   lua readme-blocks.lua README.md Install OUTDIR
--
-- Writes each fenced ```sh block of the section "## Install", verbatim, to
-- OUTDIR/<n>.sh, and prints one line per block:
--
--   <n> <root|user> <interpreter>...
--
-- "user" marks a block that uses --local (LuaRocks refuses --local to root);
-- the interpreters are the Luas that the block's lines start (lua5.1 ...
-- lua5.4, luajit). Fails when the section is missing, holds no sh block, or
-- holds a fenced block of any other kind: whatever the section shows must
-- be something CI can run.

local readme, section, outdir = ...
if not (readme and section and outdir) then
  io.stderr:write("usage: lua readme-blocks.lua README.md SECTION OUTDIR\n")
  os.exit(2)
end

local INTERPRETERS = { ["lua5.1"] = true, ["lua5.2"] = true, ["lua5.3"] = true,
                       ["lua5.4"] = true, ["luajit"] = true }

local function fail(fmt, ...)
  io.stderr:write("readme-blocks: ", fmt:format(...), "\n")
  os.exit(1)
end

local f = io.open(readme, "r") or fail("cannot read %s", readme)
local lines = {}
for line in f:lines() do
  lines[#lines + 1] = line
end
f:close()

local heading = "## " .. section
local first, last
for i, line in ipairs(lines) do
  if first == nil and line == heading then
    first = i + 1
  elseif first and line:match("^## ") then
    last = i - 1
    break
  end
end
if not first then
  fail("%s has no section %q", readme, heading)
end
last = last or #lines

local blocks = {}
local block, fence_line
for i = first, last do
  local line = lines[i]
  if block then
    if line:match("^```%s*$") then
      blocks[#blocks + 1] = block
      block = nil
    else
      block[#block + 1] = line
    end
  elseif line:match("^```") then
    local lang = line:match("^```%s*(%S*)")
    if lang ~= "sh" then
      fail("%s:%d: a ```%s block in %q: CI runs only ```sh blocks there", readme, i, lang, heading)
    end
    block, fence_line = {}, i
  end
end
if block then
  fail("%s:%d: this block is never closed", readme, fence_line)
end
if #blocks == 0 then
  fail("%q in %s holds no ```sh block", heading, readme)
end

for n, body in ipairs(blocks) do
  local out = io.open(("%s/%d.sh"):format(outdir, n), "w") or fail("cannot write to %s", outdir)
  out:write(table.concat(body, "\n"), "\n")
  out:close()
  local who, seen, interps = "root", {}, {}
  for _, line in ipairs(body) do
    if line:find("--local", 1, true) then
      who = "user"
    end
    local word = line:match("^%s*(%S+)")
    if word and INTERPRETERS[word] and not seen[word] then
      seen[word] = true
      interps[#interps + 1] = word
    end
  end
  print(n .. " " .. who .. (#interps > 0 and " " .. table.concat(interps, " ") or ""))
end
