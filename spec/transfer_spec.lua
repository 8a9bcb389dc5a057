local threading = require("threading")
local helpers = require("helpers")

-- Send values to a thread and back: what the thread returns went through
-- two copies.
local function round_trip(...)
  local t = threading.start(function(...) return ... end, ...)
  return select(2, t:join(10))
end

-- Lua 5.2+ and LuaJIT can tell two closures' upvalues apart; Lua 5.1 cannot.
local it_upvalue_ids = debug.upvalueid and it or pending
local it_51 = not debug.upvalueid and it or pending
-- Lua 5.1 and LuaJIT give functions an environment (setfenv).
local it_fenv = setfenv and it or pending

-- package.loaded entries made for one spec, removed by `finally`. (The
-- cleanup keeps only the names: what busted keeps reachable from a spec's
-- environment is copied with every function the specs send.)
local function fake_modules(entries)
  local names = {}
  for name, value in pairs(entries) do
    package.loaded[name] = value
    names[#names + 1] = name
  end
  finally(function()
    for _, name in ipairs(names) do
      package.loaded[name] = nil
    end
  end)
end

-- Send `value` through a queue to a thread that first installs `modules`
-- (name -> table) in its own package.loaded, so the name the value was
-- sent by shows in what the thread receives; returns what `use` gives.
local function receive_with_modules(value, modules, use)
  local q = threading.Queue()
  q:put(value)
  local t = threading.start(function(queue, mods, fn)
    for name, m in pairs(mods) do
      package.loaded[name] = m
    end
    return fn(queue:get())
  end, q, modules, use)
  return select(2, assert(t:join(10)))
end

describe("transfer", function()
  it("copies nil, booleans and strings with zero bytes", function()
    local a, b, c, d = round_trip(nil, true, false, "a\0b\0")
    assert.is_nil(a)
    assert.is_true(b)
    assert.is_false(c)
    assert.equal("a\0b\0", d)
  end)

  it("copies floats including infinities, NaN and negative zero", function()
    local zero = 0.0
    local inf, ninf, nan, nzero, x = round_trip(1 / 0, -1 / 0, 0 / 0, -zero, 0.1)
    assert.equal(1 / 0, inf)
    assert.equal(-1 / 0, ninf)
    assert.is_true(nan ~= nan)
    assert.equal("-0", string.format("%g", nzero))
    assert.equal(0.1, x)
  end)

  it("keeps the integer subtype and the integer limits on Lua 5.3 and later", function()
    if not math.type then
      return -- Lua 5.1, 5.2 and LuaJIT have one number type
    end
    local i, f, max, min = round_trip(3, 3.0, math.maxinteger, math.mininteger)
    assert.equal("integer", math.type(i))
    assert.equal("float", math.type(f))
    assert.equal(math.maxinteger, max)
    assert.equal(math.mininteger, min)
  end)

  it("copies nested tables", function()
    local v = { 1, 2, { x = { y = "z" } }, [true] = "yes", [2.5] = "float key" }
    assert.same(v, (round_trip(v)))
  end)

  it("keeps cycles", function()
    local v = { name = "root" }
    v.self = v
    local copy = round_trip(v)
    assert.equal(copy, copy.self)
    assert.equal("root", copy.name)
  end)

  it("keeps sub-tables shared between values shared", function()
    local shared = { 1 }
    local a, b = round_trip({ s = shared }, { s = shared })
    assert.equal(a.s, b.s)
  end)

  it("copies tables used as keys", function()
    local key = { "k" }
    local copy = round_trip({ [key] = key })
    local k, v = next(copy)
    assert.equal(k, v)
    assert.same({ "k" }, k)
  end)

  it("copies metatables, shared between tables that shared one", function()
    local mt = { __index = function(_, k) return k .. "!" end }
    local a, b = round_trip(setmetatable({}, mt), setmetatable({}, mt))
    assert.equal("hi!", a.hi)
    assert.equal(getmetatable(a), getmetatable(b))
  end)

  it("copies a Lua function with its upvalues", function()
    local base = 10
    local add = function(x) return x + base end
    local copy = round_trip(add)
    assert.equal(15, copy(5))
  end)

  it("copies a recursive local function", function()
    local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
    local t = threading.start(function() return fib(15) end)
    assert.same({ true, 610 }, { t:join(10) })
  end)

  it("binds a copied function's globals to the receiving state", function()
    local t = threading.start(function()
      rawset(_G, "set_in_thread", true)
      return rawget(_G, "set_in_thread")
    end)
    assert.same({ true, true }, { t:join(10) })
    assert.is_nil(rawget(_G, "set_in_thread"))
  end)

  it("sends a standard C function by name", function()
    local fmt = string.format
    local t = threading.start(function(x) return fmt("%03d", x) end, 7)
    assert.same({ true, "007" }, { t:join(10) })
  end)

  it("passes a standard C function as an argument", function()
    local t = threading.start(function(f, x) return f(x) end, math.floor, 2.5)
    assert.same({ true, 2 }, { t:join(10) })
  end)

  it("binds a module captured as an upvalue to the receiver's module", function()
    local str = string
    local t = threading.start(function() return str == string end)
    assert.same({ true, true }, { t:join(10) })
  end)

  it_upvalue_ids("keeps an upvalue that two closures share shared after the move", function()
    local n = 0
    local function inc() n = n + 1 end
    local function get() return n end
    local t = threading.start(function() inc(); inc(); return get() end)
    assert.same({ true, 2 }, { t:join(10) })
  end)

  it_upvalue_ids("keeps shared upvalues shared when the closures are reached through tables", function()
    local count = 0
    local counter = {}
    function counter.inc() count = count + 1; return counter end
    function counter.get() return count end
    local t = threading.start(function(holder)
      local c = holder.counter
      c.inc().inc()
      return c.get(), c
    end, { counter = counter })
    local ok, n, back = t:join(10)
    assert.is_true(ok)
    assert.equal(2, n)
    -- and again on the way back
    back.inc()
    assert.equal(3, back.get())
    assert.equal(0, count)
  end)

  it_upvalue_ids("keeps a shared upvalue shared when its own value holds the closures", function()
    local cur
    local function get() return cur end
    local function set(v) cur = v end
    cur = { get = get, set = set }
    local t = threading.start(function(f)
      local box = f()
      box.set("replaced")
      return box.get()
    end, get)
    assert.same({ true, "replaced" }, { t:join(10) })
  end)

  it_upvalue_ids("keeps upvalues shared between mutually recursive closures", function()
    local calls = 0
    local is_even, is_odd
    function is_even(n) calls = calls + 1; if n == 0 then return true end return is_odd(n - 1) end
    function is_odd(n) calls = calls + 1; if n == 0 then return false end return is_even(n - 1) end
    local t = threading.start(function() return is_even(10), calls end)
    assert.same({ true, true, 11 }, { t:join(10) })
  end)

  it_51("gives each closure its own copy of a shared upvalue on Lua 5.1", function()
    local n = 0
    local function inc() n = n + 1 end
    local function get() return n end
    local t = threading.start(function() inc(); return get() end)
    assert.same({ true, 0 }, { t:join(10) })
  end)

  it_fenv("runs a function with its setfenv sandbox in the receiver, not with full globals", function()
    local sandbox = { x = 42 }
    local f = setfenv(function() return x, print, rawget ~= nil end, sandbox) -- luacheck: ignore
    local t = threading.start(f)
    assert.same({ true, 42, nil, false }, { t:join(10) })
  end)

  it_fenv("copies one sandbox once for the functions that share it", function()
    local sandbox = { n = 0 }
    local bump = setfenv(function() n = n + 1 end, sandbox) -- luacheck: ignore
    local read = setfenv(function() return n end, sandbox) -- luacheck: ignore
    local t = threading.start(function(b, r) b(); b(); return r() end, bump, read)
    assert.same({ true, 2 }, { t:join(10) })
  end)

  it_fenv("gives a function that names no global an empty environment, not the receiver's globals", function()
    local getfenv_ = getfenv
    local sandbox = { co = coroutine.create(function() end) } -- a coroutine cannot move
    local f = setfenv(function(a) return a + 1, getfenv_(1) end, sandbox)
    local t = threading.start(function(g)
      local r, env = g(1)
      return r, next(env) == nil, env ~= _G
    end, f)
    assert.same({ true, 2, true, true }, { t:join(10) })
  end)

  it_fenv("binds a function whose environment is a loaded module to the receiver's module", function()
    local mod = { tag = "sender" }
    fake_modules({ ["app.envmod"] = mod })
    local f = setfenv(function() return tag end, mod) -- luacheck: ignore
    assert.equal("receiver", receive_with_modules(f, { ["app.envmod"] = { tag = "receiver" } },
      function(g) return g() end))
  end)

  -- Which name a C function went by depended on the order in which a
  -- state's package.loaded is walked: these senders are fresh states each.
  local function send_fmt_from_fresh_states(setup)
    local senders = {}
    for i = 1, 6 do
      senders[i] = threading.start(function(prepare)
        prepare()
        local fmt = string.format
        local t = require("threading").start(function(x) return fmt("%03d", x) end, 7)
        return t:join(10)
      end, setup)
    end
    for i = 1, 6 do
      assert.same({ true, true, "007" }, { senders[i]:join(30) })
    end
  end

  it("sends string.format by its standard name when other modules hold it too", function()
    -- the receiver cannot load these modules: sending by one of their names fails
    send_fmt_from_fresh_states(function()
      for i = 1, 10 do
        package.loaded["app.util" .. i] = { fmt = string.format }
      end
    end)
  end)

  it("sends string.format by its library name when globals hold it too", function()
    -- what a program adds to _G (or to any standard library) is missing in the receiver
    send_fmt_from_fresh_states(function()
      for i = 1, 10 do
        rawset(_G, "fmt_alias" .. i, string.format)
      end
    end)
  end)

  it("binds a standard module captured as an upvalue by its standard name when an alias holds it", function()
    local aliases = {}
    for i = 1, 20 do
      aliases["app.str" .. i] = string
    end
    fake_modules(aliases)
    local str = string
    local t = threading.start(function() return str == string end)
    assert.same({ true, true }, { t:join(10) })
  end)

  it("sends a C function that aliases of one module table hold by the shortest name", function()
    local iter = ("abc"):gmatch(".")
    local mod = { it = iter }
    local aliases, installed = {}, {}
    for i = 1, 9 do
      aliases["app.long.alias" .. i] = mod
      installed["app.long.alias" .. i] = { it = "app.long.alias" .. i }
    end
    aliases["app.m"] = mod
    installed["app.m"] = { it = "app.m" }
    fake_modules(aliases)
    assert.equal("app.m", receive_with_modules(iter, installed, function(v) return v end))
  end)

  it("binds a module table held under several names by the shortest one", function()
    local mod = { tag = "sender" }
    local aliases, installed = {}, {}
    for i = 1, 9 do
      aliases["app.long.alias" .. i] = mod
      installed["app.long.alias" .. i] = { tag = "app.long.alias" .. i }
    end
    aliases["app.m"] = mod
    installed["app.m"] = { tag = "app.m" }
    fake_modules(aliases)
    local function tag() return mod.tag end
    assert.equal("app.m", receive_with_modules(tag, installed, function(f) return f() end))
  end)

  it("names a module by what package.loaded holds now, not when it held as many modules", function()
    local old, new = { tag = "old" }, { tag = "new" }
    fake_modules({ ["app.old"] = old })
    local function old_tag() return old.tag end
    assert.equal("app.old", receive_with_modules(old_tag, { ["app.old"] = { tag = "app.old" } },
      function(f) return f() end))
    -- as many entries as before, one of them different
    package.loaded["app.old"] = nil
    fake_modules({ ["app.new"] = new })
    local function new_tag() return new.tag end
    assert.equal("app.new", receive_with_modules(new_tag, { ["app.new"] = { tag = "app.new" } },
      function(f) return f() end))
  end)

  it("refuses a C function that two different modules hold, naming both", function()
    local iter = ("abc"):gmatch(".")
    fake_modules({ ["app.one"] = { f = iter }, ["app.two"] = { g = iter } })
    assert.has_error(function() threading.Thread(print, iter) end,
      "cannot transfer value at args[1]: C function (ambiguous: reachable as both app.one.f and app.two.g)")
  end)

  it("sends the module's own C functions captured as upvalues", function()
    -- threading re-exports threading.core's functions: one table is chosen
    local monotonic, cpu_count = threading.monotonic, threading.cpu_count
    local t = threading.start(function()
      return type(monotonic()), cpu_count() >= 1
    end)
    assert.same({ true, "number", true }, { t:join(10) })
  end)

  it("sizes a sparse table by its entries, not by its border", function()
    -- {[1]=0, [2]=1, [4]=2, ..., [2^40]=40}: #t is 2^40 when all of it is in the hash part
    local src, k = { "return {" }, 1
    for i = 0, 40 do
      src[#src + 1] = ("[%.0f]=%d,"):format(k, i)
      k = k * 2
    end
    src[#src + 1] = "}"
    local sparse = assert((loadstring or load)(table.concat(src)))()
    -- LuaJIT has no memory_limit; elsewhere the cap fails an array part sized
    -- from #t. The target is loaded from source so that its globals are the
    -- real ones (a spec's function would carry busted's environment along).
    local target = assert((loadstring or load)([[
      local s, n = ..., 0
      for _ in pairs(s) do n = n + 1 end
      return n, s[2 ^ 40], collectgarbage("count")
    ]]))
    local t = threading.Thread{ target = target, args = { sparse },
                                memory_limit = not jit and 16 * 1024 * 1024 or nil }:start()
    local ok, n, last, kib = t:join(30)
    assert.is_true(ok, n)
    assert.equal(41, n)
    assert.equal(40, last)
    assert.is_true(kib < 4096)
  end)

  it("moves module objects by reference", function()
    local lock = threading.Lock()
    local t = threading.start(function(l) return l:acquire(false) end, lock)
    assert.same({ true, true }, { t:join(10) })
    assert.is_true(lock:locked())
    lock:release()
  end)

  it("gives one object one handle per state", function()
    local lock = threading.Lock()
    local t = threading.start(function(a, b) return rawequal(a, b) end, lock, lock)
    assert.same({ true, true }, { t:join(10) })
    assert.is_true(rawequal(lock, (round_trip(lock))))
  end)

  it("refuses a coroutine, naming the path", function()
    local co = coroutine.create(function() end)
    assert.has_error(function() threading.Thread(print, { inner = { co } }) end,
      "cannot transfer value at args[1].inner[1]: coroutine")
  end)

  it("refuses userdata that is not a threading object", function()
    assert.has_error(function() threading.Thread(print, { f = io.stdout }) end,
      "cannot transfer value at args[1].f: userdata (not a threading object)")
  end)

  it("refuses a threading.async task by its type", function()
    local async = require("threading.async")
    local ok, err = async.run(function()
      local task = async.spawn(function() end)
      return pcall(threading.Thread, print, { task = task })
    end)
    assert.is_false(ok)
    assert.equal("cannot transfer value at args[1].task: threading.async.Task (cannot leave its state)", err)
  end)

  it("refuses a C function that is not reachable by name", function()
    local iter = ("abc"):gmatch(".")
    assert.has_error(function() threading.Thread(print, iter) end,
      "cannot transfer value at args[1]: C function (not reachable by name from package.loaded)")
  end)

  it("names a refused key", function()
    local co = coroutine.create(function() end)
    assert.has_error(function() threading.Thread(print, { [co] = 1 }) end,
      "cannot transfer value at args[1].<key>: coroutine")
  end)

  it("names a refused metatable field", function()
    local co = coroutine.create(function() end)
    assert.has_error(function() threading.Thread(print, setmetatable({}, { co = co })) end,
      "cannot transfer value at args[1].<metatable>.co: coroutine")
  end)

  it("refuses a 100,000-deep table without crashing", function()
    local deep = {}
    local cur = deep
    for _ = 1, 100000 do
      cur.next = {}
      cur = cur.next
    end
    local ok, err = pcall(threading.Thread, print, deep)
    assert.is_false(ok)
    assert.truthy(err:find("nesting deeper than", 1, true))
  end)

  it("copies a 500-deep table", function()
    local deep = {}
    local cur = deep
    for i = 1, 500 do
      cur.next = { i = i }
      cur = cur.next
    end
    assert.is_true(helpers.same(deep, (round_trip(deep))))
  end)

  it("copies a long string intact", function()
    local s = ("0123456789"):rep(100000)
    assert.equal(s, (round_trip(s)))
  end)
end)
