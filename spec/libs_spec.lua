local threading = require("threading")

local load = loadstring or load -- luacheck: ignore

-- Run the chunk `source` with arguments ... in a new thread started with
-- `libs` (nil: the default) and return what join gives. The chunk is
-- loaded here rather than written as a function of this file, so that its
-- globals are the process's own, not the ones busted gives a spec file.
local function run(libs, source, ...)
  local t = threading.Thread{ target = assert(load(source)), args = { ... }, libs = libs }
  t:start()
  return t:join(10)
end

-- The standard libraries of this Lua apart from base: the tables among the
-- globals of a thread that opened them all at start, less those of a thread
-- with base alone (5.1's coroutine is part of base).
local function library_names()
  local ok, names = run("all", [[
    local known = {
      coroutine = true, table = true, io = true, os = true, string = true, math = true,
      utf8 = true, debug = true, package = true, bit32 = true, bit = true, jit = true,
    }
    local found = {}
    for k, v in pairs(_G) do
      if known[k] and type(v) == "table" then found[#found + 1] = k end
    end
    table.sort(found)
    return found
  ]])
  assert(ok, names)
  local ok2, base = run({}, [[
    local in_base = {}
    for _, name in ipairs((...)) do in_base[name] = rawget(_G, name) ~= nil end
    return in_base
  ]], names)
  assert(ok2, base)
  local libs = {}
  for _, name in ipairs(names) do
    if not base[name] then libs[#libs + 1] = name end
  end
  return libs
end

local LIBS = library_names()

describe("a thread's standard libraries", function()
  describe("by default", function()
    it("starts with only the base library open", function()
      local ok, open = run(nil, [[
        local names, n = ..., 0
        for _, name in ipairs(names) do
          if rawget(_G, name) ~= nil then n = n + 1 end
        end
        return n
      ]], LIBS)
      assert.is_true(ok)
      assert.equal(0, open)
    end)

    it("sees every global that a thread with all libraries sees, of the same type", function()
      local _, eager = run("all", [[
        local seen = {}
        for k, v in pairs(_G) do
          if type(k) == "string" then seen[k] = type(v) end
        end
        return seen
      ]])
      local ok, lazy = run(nil, [[
        local seen = {}
        for k in pairs((...)) do seen[k] = type(_G[k]) end
        return seen
      ]], eager)
      assert.is_true(ok)
      assert.same(eager, lazy)
    end)

    for _, name in ipairs(LIBS) do
      it("opens " .. name .. " when its global is first read", function()
        local ok, before, kind, after = run(nil, [[
          local n = ...
          return rawget(_G, n), type(_G[n]), rawget(_G, n) ~= nil
        ]], name)
        assert.is_true(ok)
        assert.is_nil(before)
        assert.equal("table", kind)
        assert.is_true(after)
      end)

      it("opens " .. name .. " for require, as the same table as its global", function()
        local ok, same = run(nil, "local n = ...; return require(n) == _G[n]", name)
        assert.is_true(ok)
        assert.is_true(same)
      end)
    end

    it("opens package when require is first read", function()
      local ok, kind, loaded = run(nil, [[return type(require), type(rawget(_G, "package"))]])
      assert.is_true(ok)
      assert.equal("function", kind)
      assert.equal("table", loaded)
    end)

    it("lists an opened library in package.loaded", function()
      local ok, same = run(nil, "local m = math; return package.loaded.math == m")
      assert.is_true(ok)
      assert.is_true(same)
    end)

    it("gives strings their methods before the string library is named", function()
      local ok, text, upper = run(nil, [[return ("%d-%s"):format(7, "x"), ("abc"):upper()]])
      assert.is_true(ok)
      assert.equal("7-x", text)
      assert.equal("ABC", upper)
    end)

    it("does arithmetic on numeric strings before the string library opens", function()
      local ok, sum, neg, prod = run(nil, [[return "10" + 1, -"2", "3" * "4"]])
      assert.is_true(ok)
      assert.equal(11, sum)
      assert.equal(-2, neg)
      assert.equal(12, prod)
    end)

    it("gives package the creating state's path and cpath", function()
      local ok, path, cpath = run(nil, "return package.path, package.cpath")
      assert.is_true(ok)
      assert.equal(package.path, path)
      assert.equal(package.cpath, cpath)
    end)

    it("passes the path on to a thread that a thread starts", function()
      local ok, inner_ok, path = run(nil, [[
        local threading = require("threading")
        return threading.start(function() return package.path end):join(10)
      ]])
      assert.is_true(ok)
      assert.is_true(inner_ok)
      assert.equal(package.path, path)
    end)

    it("keeps a global the thread set before the library of that name opened", function()
      local ok, value = run(nil, "io = 5; return io")
      assert.is_true(ok)
      assert.equal(5, value)
    end)

    it("does not reopen a library whose global the thread removed", function()
      local ok, value = run(nil, "local _ = os.time; os = nil; return os")
      assert.is_true(ok)
      assert.is_nil(value)
    end)

    it("opens the rest before the thread sets a metatable of its own on _G", function()
      local ok, kind, err = run(nil, [[
        setmetatable(_G, { __index = function(_, k) error("undefined global " .. k, 2) end })
        local ok, e = pcall(function() return undefined_name end)
        return type(io.write), not ok and e
      ]])
      assert.is_true(ok)
      assert.equal("function", kind)
      assert.matches("undefined global undefined_name", err)
    end)

    it("returns nil for a global that names no library", function()
      local ok, value = run(nil, "return no_such_global")
      assert.is_true(ok)
      assert.is_nil(value)
    end)

    if jit then
      it("offers LuaJIT's preloaded modules (ffi, table.new, string.buffer, jit.util)", function()
        local ok, ffi, new, buffer, util = run(nil, [[
          return type(require("ffi").cdef), type(require("table.new")),
                 type(require("string.buffer").new), type(require("jit.util").funcinfo)
        ]])
        assert.is_true(ok)
        assert.same({ "function", "function", "function", "function" }, { ffi, new, buffer, util })
      end)
    end
  end)

  describe("with libs = \"all\"", function()
    it("opens every library at start", function()
      local ok, open = run("all", [[
        local names, n = ..., 0
        for _, name in ipairs(names) do
          if rawget(_G, name) ~= nil then n = n + 1 end
        end
        return n
      ]], LIBS)
      assert.is_true(ok)
      assert.equal(#LIBS, open)
    end)

    it("leaves _G without a metatable", function()
      local ok, none = run("all", "return getmetatable(_G) == nil")
      assert.is_true(ok)
      assert.is_true(none)
    end)
  end)

  describe("with a list", function()
    it("opens the libraries it names at start", function()
      local ok, s, t = run({ "string", "table" }, [[
        return rawget(_G, "string") ~= nil, rawget(_G, "table") ~= nil
      ]])
      assert.is_true(ok)
      assert.is_true(s)
      assert.is_true(t)
    end)

    it("leaves out the libraries it does not name", function()
      local ok, io_kind, req = run({ "string" }, "return type(io), type(require)")
      assert.is_true(ok)
      assert.equal("nil", io_kind)
      assert.equal("nil", req)
    end)

    it("keeps require from reaching a library it does not name", function()
      local ok, found = run({ "package" }, [[return (pcall(require, "io"))]])
      assert.is_true(ok)
      assert.is_false(found)
    end)

    it("leaves strings without methods when it does not name string", function()
      local ok, err = run({}, [[
        local ok, e = pcall(function() return ("x"):upper() end)
        return not ok and e
      ]])
      assert.is_true(ok)
      assert.matches("attempt to index", err)
    end)

    it("ignores the names of libraries this Lua does not have", function()
      local ok, kind = run({ "base", "coroutine", "utf8", "bit32", "bit", "jit", "ffi", "string" },
        "return type(string)")
      assert.is_true(ok)
      assert.equal("table", kind)
    end)

    it("says which module a thread without require could not load", function()
      local t = threading.Thread{ target = function() return threading.get_ident() end, libs = {} }
      local ok, err = t:start():join(10)
      assert.is_false(ok)
      assert.matches("module 'threading' is needed, but this thread has no 'require'", err)
    end)

    it("applies to a Pool's workers", function()
      local pool = threading.Pool{ workers = 1, libs = { "string" } }
      local fut = pool:submit(assert(load([[return type(io), ("a"):rep(3)]])))
      local ok, io_kind, s = fut:result(10)
      pool:shutdown()
      assert.is_true(ok)
      assert.equal("nil", io_kind)
      assert.equal("aaa", s)
    end)
  end)

  describe("option", function()
    it("rejects a name that is no standard library", function()
      local ok, err = pcall(threading.Thread, { target = print, libs = { "string", "sockets" } })
      assert.is_false(ok)
      assert.matches("bad argument #1 to .*field 'libs%[2%]': no standard library 'sockets'", err)
    end)

    it("rejects a value that is neither \"all\" nor a list", function()
      local ok, err = pcall(threading.Thread, { target = print, libs = "some" })
      assert.is_false(ok)
      assert.matches("field 'libs' must be \"all\" or a list of library names", err)
    end)

    it("rejects a list entry that is not a string", function()
      local ok, err = pcall(threading.Thread, { target = print, libs = { 1 } })
      assert.is_false(ok)
      assert.matches("field 'libs%[1%]' must be a string", err)
    end)

    it("rejects a bad libs in a Pool's options", function()
      local ok, err = pcall(threading.Pool, { workers = 1, libs = { "nope" } })
      assert.is_false(ok)
      assert.matches("no standard library 'nope'", err)
    end)
  end)
end)
