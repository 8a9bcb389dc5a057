--- Checks that the packaging agrees with itself; run by `make lint` from the
-- repository's root, with Lua 5.2 or later. Prints one line per problem and
-- exits 1 if there is any.
--
--   * src/version.h holds the version, and nothing else in src/ defines it;
--     threading.c takes _VERSION from it.
--   * rockspec/ holds threading-scm-1 and the release rockspec of that
--     version, each named after its version field; the release's source
--     tag is v<version>, and the two are otherwise the same rockspec.
--   * The rockspecs list every C source (src/http*.c is threading.http, the
--     rest threading.core) and every Lua file of lua/threading, and nothing
--     that does not exist.
--   * CHANGELOG.md's latest release heading and every release rock that
--     README.md names carry that version.

local problems = {}
local function problem(fmt, ...)
  problems[#problems + 1] = fmt:format(...)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then
    problem("%s is missing", path)
    return ""
  end
  local s = f:read("*a")
  f:close()
  return s
end

local function list(dir, pattern)
  local names = {}
  local p = assert(io.popen("ls -1 '" .. dir .. "' 2>/dev/null"))
  for name in p:lines() do
    if name:match(pattern) then
      names[#names + 1] = name
    end
  end
  p:close()
  table.sort(names)
  return names
end

-- A rockspec is loaded as LuaRocks loads it: a chunk run in an empty
-- environment, whose globals are the rockspec's fields.
local function load_rockspec(path)
  local f = io.open(path, "rb")
  if not f then
    return nil   -- already reported with the listing of rockspec/
  end
  f:close()
  local env = {}
  local chunk, err = load(read(path), "@" .. path, "t", env)
  if not chunk then
    problem("%s does not load: %s", path, err)
    return nil
  end
  local ok, run_err = pcall(chunk)
  if not ok then
    problem("%s does not run: %s", path, run_err)
    return nil
  end
  return env
end

local function deep_equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

local function copy_without(t, drop)
  local c = {}
  for k, v in pairs(t) do
    c[k] = type(v) == "table" and copy_without(v, {}) or v
  end
  for _, path in ipairs(drop) do
    local parent, key = c, nil
    for part in path:gmatch("[^.]+") do
      if key then
        parent = parent[key]
      end
      key = part
    end
    if type(parent) == "table" then
      parent[key] = nil
    end
  end
  return c
end

local function words(s)
  local out = {}
  for w in tostring(s or ""):gmatch("%S+") do
    out[#out + 1] = w
  end
  return out
end

-- the version
local version_h = read("src/version.h")
local version
for v in version_h:gmatch('#define%s+THREADING_VERSION%s+"([^"]*)"') do
  if version then
    problem("src/version.h defines THREADING_VERSION twice")
  end
  version = v
end
if not version then
  problem('src/version.h has no #define THREADING_VERSION "x.y.z"')
  version = "?"
elseif not version:match("^%d+%.%d+%.%d+$") then
  problem("src/version.h: %q is not a version of the form x.y.z", version)
end
for _, name in ipairs(list("src", "%.[ch]$")) do
  if name ~= "version.h" and read("src/" .. name):match("#define%s+THREADING_VERSION") then
    problem("src/%s defines THREADING_VERSION: it lives in src/version.h alone", name)
  end
end
if not read("src/threading.c"):match('#include "version.h"') then
  problem('src/threading.c does not #include "version.h"')
end

-- the rockspecs
local scm_name = "threading-scm-1.rockspec"
local release_name = ("threading-%s-1.rockspec"):format(version)
local names = list("rockspec", "%.rockspec$")
local expected = { release_name, scm_name }
table.sort(expected)
if table.concat(names, " ") ~= table.concat(expected, " ") then
  problem("rockspec/ holds %s; expected %s (the version is %s, in src/version.h)",
          table.concat(names, ", "), table.concat(expected, " and "), version)
end
local scm = load_rockspec("rockspec/" .. scm_name)
local release = load_rockspec("rockspec/" .. release_name)
local function check_name(spec, name, want_version)
  if spec.package ~= "threading" then
    problem("rockspec/%s: package is %s, not threading", name, tostring(spec.package))
  end
  if spec.version ~= want_version then
    problem("rockspec/%s: version is %s, not %s", name, tostring(spec.version), want_version)
  end
end
if scm then
  check_name(scm, scm_name, "scm-1")
  if scm.source and scm.source.tag then
    problem("rockspec/%s: an scm rockspec has no source tag", scm_name)
  end
end
if release then
  check_name(release, release_name, version .. "-1")
  local tag = release.source and release.source.tag
  if tag ~= "v" .. version then
    problem("rockspec/%s: source.tag is %s, not v%s", release_name, tostring(tag), version)
  end
end
if scm and release then
  local drop = { "version", "source.tag" }
  if not deep_equal(copy_without(scm, drop), copy_without(release, drop)) then
    problem("rockspec/%s and rockspec/%s differ in more than version and source.tag",
            scm_name, release_name)
  end
end

-- what the rockspecs build and install
local spec = scm or release
if spec then
  local build = spec.build or {}
  local vars = build.build_variables or {}
  local listed = {}
  for _, var in ipairs({ "CORE_SOURCES", "HTTP_SOURCES" }) do
    for _, file in ipairs(words(vars[var])) do
      if listed[file] then
        problem("rockspec: %s is listed twice", file)
      end
      listed[file] = var
    end
  end
  for _, name in ipairs(list("src", "%.c$")) do
    local file = "src/" .. name
    local want = name:match("^http") and "HTTP_SOURCES" or "CORE_SOURCES"
    if listed[file] ~= want then
      problem("rockspec: %s is missing from build_variables.%s", file, want)
    end
    listed[file] = nil
  end
  for file in pairs(listed) do
    problem("rockspec: %s is listed but does not exist", file)
  end

  local lua_files = {}
  for module, file in pairs((build.install or {}).lua or {}) do
    local want = "lua/" .. module:gsub("%.", "/") .. ".lua"
    if file ~= want then
      problem("rockspec: module %s is %s; expected %s", module, file, want)
    end
    lua_files[file] = true
  end
  for _, dir in ipairs({ "lua/threading", "lua/threading/async" }) do
    for _, name in ipairs(list(dir, "%.lua$")) do
      local file = dir .. "/" .. name
      if not lua_files[file] then
        problem("rockspec: %s is missing from build.install.lua", file)
      end
      lua_files[file] = nil
    end
  end
  for file in pairs(lua_files) do
    problem("rockspec: %s is listed but does not exist", file)
  end
end

-- the documents
local latest = read("CHANGELOG.md"):match("\n## %[(%d+%.%d+%.%d+)%]")
if latest ~= version then
  problem("CHANGELOG.md: the latest release heading is %s, not ## [%s]", tostring(latest), version)
end
for v in read("README.md"):gmatch("threading%-(%d+%.%d+%.%d+)%-1") do
  if v ~= version then
    problem("README.md names threading-%s-1; the version is %s", v, version)
  end
end

if #problems > 0 then
  for _, p in ipairs(problems) do
    io.stderr:write("check-packaging: ", p, "\n")
  end
  os.exit(1)
end
print(("packaging: version %s agrees in src/version.h, both rockspecs, CHANGELOG.md and README.md")
      :format(version))
