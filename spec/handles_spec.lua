local threading = require("threading")
local helpers = require("helpers")

-- One object of every type of the module, made fresh.
local makers = {
  Lock = function() return threading.Lock() end,
  RLock = function() return threading.RLock() end,
  Condition = function() return threading.Condition() end,
  Semaphore = function() return threading.Semaphore() end,
  BoundedSemaphore = function() return threading.BoundedSemaphore() end,
  Event = function() return threading.Event() end,
  Barrier = function() return threading.Barrier(2) end,
  Queue = function() return threading.Queue() end,
  LifoQueue = function() return threading.LifoQueue() end,
  PriorityQueue = function() return threading.PriorityQueue() end,
  SimpleQueue = function() return threading.SimpleQueue() end,
  Value = function() return threading.Value(1) end,
  Table = function() return threading.Table({ a = 1 }) end,
  Thread = function() return threading.Thread(function() end) end,
  Pool = function() return threading.Pool(1) end,
  Future = function()
    local pool = threading.Pool(1)
    local f = pool:submit(function() return 1 end)
    f:result(10)
    pool:shutdown()
    return f
  end,
}

-- Run the handle's own __gc, as the collector (or lua_close) would.
local function collect(obj)
  getmetatable(obj).__gc(obj)
end

describe("a handle whose __gc has run", function()
  -- Everything callable a handle offers: its methods and its metamethods
  -- (but those that must work on a released handle: __gc, __tostring, __eq).
  local function callables(obj)
    local mt, out = getmetatable(obj), {}
    for k, v in pairs(mt.methods) do
      if type(v) == "function" then
        out[k] = v
      end
    end
    for k, v in pairs(mt) do
      if type(v) == "function" and k ~= "__gc" and k ~= "__tostring" and k ~= "__eq" then
        out[k] = v
      end
    end
    return out
  end

  for name, make in pairs(makers) do
    it("raises a clean error from every method and metamethod of a " .. name, function()
      local obj = make()
      local fns = callables(obj)
      collect(obj)
      local count = 0
      for k, fn in pairs(fns) do
        local ok, err = pcall(fn, obj, function() end, { 1 })
        assert.is_false(ok, k)
        assert.truthy(tostring(err):find("released", 1, true), k .. ": " .. tostring(err))
        count = count + 1
      end
      assert.truthy(count > 0)
    end)
  end

  it("can be collected twice", function()
    for _, make in pairs(makers) do
      local obj = make()
      collect(obj)
      collect(obj)
    end
  end)

  it("raises a clean error from a queue iterator whose queue was collected (segfault in q:iter)", function()
    for _, kind in ipairs({ "Queue", "LifoQueue", "PriorityQueue", "SimpleQueue" }) do
      local q = makers[kind]()
      q:put(1)
      local nxt = q:iter()
      collect(q)
      local ok, err = pcall(nxt)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("released", 1, true), err)
    end
  end)

  it("still gives tostring and equality", function()
    local lock = threading.Lock()
    collect(lock)
    assert.equal("threading object (released)", tostring(lock))
    assert.is_false(lock == threading.Lock())
  end)

  it("is refused by functions that take handles, with the reason", function()
    local lock = threading.Lock()
    collect(lock)
    local ok, err = pcall(threading.Condition, lock)
    assert.is_false(ok)
    assert.truthy(err:find("handle already released", 1, true), err)
  end)

  it("is refused by a transfer, naming where it was", function()
    local lock = threading.Lock()
    collect(lock)
    local ok, err = pcall(threading.Thread, function() end, { l = lock })
    assert.is_false(ok)
    assert.truthy(err:find("cannot transfer value at args[1].l: threading object (handle already released)",
                           1, true), err)
  end)

  it("is named as released in a list of futures", function()
    local f = makers.Future()
    collect(f)
    local ok, err = pcall(threading.wait, { f })
    assert.is_false(ok)
    assert.truthy(err:find("item 1 is a released handle", 1, true), err)
  end)

  it("is safe to use from a finalizer that runs after it at lua_close (segfault in q:iter)", function()
    local code, out, err = helpers.run_script(helpers.with_gc_source .. [[
      local threading = require("threading")
      -- finalizers run in the reverse order of their marking: this one
      -- runs after the queue handle's own
      local nxt
      keep = with_gc(function()
        local ok, e = pcall(nxt)
        io.stdout:write(tostring(ok), " ", tostring(e):match("released") or tostring(e), "\n")
      end)
      local q = threading.Queue()
      q:put(1)
      nxt = q:iter()
      keep_q = q
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    assert.equal("false released\n", out)
  end)
end)
