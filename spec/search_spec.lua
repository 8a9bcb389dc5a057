local threading = require("threading")

local load = loadstring or load -- luacheck: ignore

-- A fresh directory of its own, removed by the returned function.
local function tempdir()
  local name = os.tmpname()
  os.remove(name)
  assert(os.execute("mkdir -p '" .. name .. "'"))
  return name, function() os.execute("rm -rf '" .. name .. "'") end
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- In a new thread, set package.path to `path` and require `name`; return
-- what join gives (true and the module's value, or false and the error).
local function require_in_thread(path, name)
  local t = threading.Thread{ target = assert(load([[
    local path, name = ...
    package.path = path
    return (require(name))
  ]])), args = { path, name } }
  t:start()
  return t:join(10)
end

describe("require in threads", function()
  after_each(function() threading.invalidate_caches() end)

  it("finds a module in the next thread where the first thread found it", function()
    local dir1, clean1 = tempdir()
    local dir2, clean2 = tempdir()
    finally(function() clean1() clean2() end)
    local path = dir1 .. "/?.lua;" .. dir2 .. "/?.lua"
    write(dir2 .. "/search_mod_a.lua", "return 'second'")
    assert.same({ true, "second" }, { require_in_thread(path, "search_mod_a") })
    -- a file that appears earlier in the path is not searched for again
    write(dir1 .. "/search_mod_a.lua", "return 'first'")
    assert.same({ true, "second" }, { require_in_thread(path, "search_mod_a") })
  end)

  it("searches again after threading.invalidate_caches()", function()
    local dir1, clean1 = tempdir()
    local dir2, clean2 = tempdir()
    finally(function() clean1() clean2() end)
    local path = dir1 .. "/?.lua;" .. dir2 .. "/?.lua"
    write(dir2 .. "/search_mod_b.lua", "return 'second'")
    assert.same({ true, "second" }, { require_in_thread(path, "search_mod_b") })
    write(dir1 .. "/search_mod_b.lua", "return 'first'")
    threading.invalidate_caches()
    assert.same({ true, "first" }, { require_in_thread(path, "search_mod_b") })
  end)

  it("searches again when the file found before is gone", function()
    local dir1, clean1 = tempdir()
    local dir2, clean2 = tempdir()
    finally(function() clean1() clean2() end)
    local path = dir1 .. "/?.lua;" .. dir2 .. "/?.lua"
    write(dir1 .. "/search_mod_c.lua", "return 'first'")
    write(dir2 .. "/search_mod_c.lua", "return 'second'")
    assert.same({ true, "first" }, { require_in_thread(path, "search_mod_c") })
    os.remove(dir1 .. "/search_mod_c.lua")
    assert.same({ true, "second" }, { require_in_thread(path, "search_mod_c") })
  end)

  it("keeps the search of each path apart", function()
    local dir1, clean1 = tempdir()
    local dir2, clean2 = tempdir()
    finally(function() clean1() clean2() end)
    write(dir1 .. "/search_mod_d.lua", "return 'one'")
    write(dir2 .. "/search_mod_d.lua", "return 'two'")
    assert.same({ true, "one" }, { require_in_thread(dir1 .. "/?.lua", "search_mod_d") })
    assert.same({ true, "two" }, { require_in_thread(dir2 .. "/?.lua", "search_mod_d") })
  end)

  if _VERSION ~= "Lua 5.1" then -- 5.1's require passes the name alone
    it("passes the module its file name, as require does, also when it remembers it", function()
      local dir, clean = tempdir()
      finally(clean)
      write(dir .. "/search_mod_e.lua", "return select(2, ...)")
      local file = dir .. "/search_mod_e.lua"
      assert.same({ true, file }, { require_in_thread(dir .. "/?.lua", "search_mod_e") })
      assert.same({ true, file }, { require_in_thread(dir .. "/?.lua", "search_mod_e") })
    end)
  end

  it("reports a missing module with require's own message", function()
    local dir, clean = tempdir()
    finally(clean)
    local ok, err = require_in_thread(dir .. "/?.lua", "search_mod_missing")
    assert.is_false(ok)
    assert.matches("module 'search_mod_missing' not found", err)
    assert.matches("no file '" .. dir:gsub("%p", "%%%0") .. "/search_mod_missing.lua'", err)
  end)

  it("reports a module that does not compile with require's own message, every time", function()
    local dir, clean = tempdir()
    finally(clean)
    write(dir .. "/search_mod_bad.lua", "return +")
    for _ = 1, 2 do
      local ok, err = require_in_thread(dir .. "/?.lua", "search_mod_bad")
      assert.is_false(ok)
      assert.matches("error loading module 'search_mod_bad'", err)
    end
  end)

  it("loads a C module in thread after thread", function()
    for _ = 1, 3 do
      local t = threading.Thread{ target = assert(load([[
        return type(require("threading.core").Lock)
      ]])) }
      t:start()
      assert.same({ true, "function" }, { t:join(10) })
    end
  end)
end)
