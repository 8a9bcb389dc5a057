local threading = require("threading")

describe("Lock", function()
  it("starts unlocked", function()
    assert.is_false(threading.Lock():locked())
  end)

  it("is locked after acquire and unlocked after release", function()
    local lock = threading.Lock()
    assert.is_true(lock:acquire())
    assert.is_true(lock:locked())
    lock:release()
    assert.is_false(lock:locked())
  end)

  it("returns false from a non-blocking acquire of a held lock", function()
    local lock = threading.Lock()
    lock:acquire()
    assert.is_false(lock:acquire(false))
    lock:release()
  end)

  it("is not re-entrant: the holder's second try fails", function()
    local lock = threading.Lock()
    lock:acquire()
    assert.is_false(lock:acquire(true, 0))
    lock:release()
  end)

  it("returns false when a timed acquire runs out", function()
    local lock = threading.Lock()
    lock:acquire()
    local t0 = threading.monotonic()
    assert.is_false(lock:acquire(0.05))
    local waited = threading.monotonic() - t0
    assert.is_true(waited >= 0.04 and waited < 5)
    lock:release()
  end)

  it("accepts acquire(true, timeout)", function()
    local lock = threading.Lock()
    assert.is_true(lock:acquire(true, 1))
    lock:release()
  end)

  it("wakes a blocked acquirer on release", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l)
      l:acquire()
      l:release()
      return "got it"
    end, lock)
    lock:release()
    assert.same({ true, "got it" }, { t:join(10) })
  end)

  it("may be released by a thread other than the one that acquired it", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:release() end, lock)
    assert.is_true((t:join(10)))
    assert.is_false(lock:locked())
  end)

  it("keeps a shared counter exact across four threads", function()
    local lock, v = threading.Lock(), threading.Value(0)
    local threads = {}
    for i = 1, 4 do
      threads[i] = threading.start(function(l, counter)
        for _ = 1, 5000 do
          l:acquire()
          counter:set(counter:get() + 1)
          l:release()
        end
      end, lock, v)
    end
    for i = 1, 4 do assert.is_true((threads[i]:join(30))) end
    assert.equal(20000, v:get())
  end)

  it("runs a function under the lock with with and returns its results", function()
    local lock = threading.Lock()
    local a, b = lock:with(function(x) return lock:locked(), x end, 5)
    assert.is_true(a)
    assert.equal(5, b)
    assert.is_false(lock:locked())
  end)

  it("releases the lock when the function given to with fails", function()
    local lock = threading.Lock()
    assert.has_error(function() lock:with(error, "inside", 0) end, "inside")
    assert.is_false(lock:locked())
  end)

  it("releases a guard once, however often it is closed", function()
    local lock = threading.Lock()
    local g = lock:guard()
    assert.is_true(lock:locked())
    g:release()
    g:release()
    assert.is_false(lock:locked())
  end)

  it("releases at the end of a <close> scope on Lua 5.4", function()
    if _VERSION ~= "Lua 5.4" then
      return -- to-be-closed variables are new in 5.4
    end
    local lock = threading.Lock()
    local scope = assert(load([[
      local lock = ...
      do
        local _ <close> = lock:guard()
        assert(lock:locked())
      end
      return lock:locked()
    ]]))
    assert.is_false(scope(lock))
  end)

  it("offers with and guard in a thread that never loaded the module", function()
    local lock = threading.Lock()
    local t = threading.start(function(l)
      local inside = l:with(function() return l:locked() end)
      l:guard():release()
      return inside, l:locked()
    end, lock)
    assert.same({ true, true, false }, { t:join(10) })
  end)

  it("releases a <close> guard when the cancellation strikes as the guard"
     .. " is made (lock left held by guard)", function()
    if _VERSION ~= "Lua 5.4" then
      return -- to-be-closed variables are new in 5.4
    end
    local body = assert(load([[
      local lock, started = ...
      started:set()
      while true do
        local _ <close> = lock:guard()
      end
    ]]))
    for round = 1, 100 do
      local lock, started = threading.Lock(), threading.Event()
      local t = threading.Thread{ daemon = true, target = body, args = { lock, started } }
      t:start()
      assert.is_true(started:wait(10))
      t:cancel()
      assert.same({ false, "cancelled" }, { t:join(10) })
      assert.is_false(lock:locked(), "round " .. round)
    end
  end)

  -- regression: the cancel hook struck again between pcall and the release
  it("releases the lock when a thread is cancelled inside with", function()
    local lock = threading.Lock()
    local t = threading.Thread{ name = "in-with", target = function(l)
      l:with(function() require("threading").sleep(60) end)
    end, args = { lock } }:start()
    -- cancel only once it sleeps: the hook is then set while it is blocked
    local blocked = false
    for _ = 1, 500 do
      for _, w in ipairs(threading.waits()) do
        if w.name == "in-with" and w.blocked_on == "sleep" then blocked = true end
      end
      if blocked then break end
      threading.sleep(0.01)
    end
    assert.is_true(blocked)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.is_false(lock:locked())
  end)

  it("is a cancellation point while blocked", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:acquire() end, lock)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    lock:release()
  end)
end)

describe("Lock bad input", function()
  it("refuses to release an unlocked lock", function()
    assert.has_error(function() threading.Lock():release() end,
      "calling 'release' on bad self (release unlocked lock)")
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function() threading.Lock():acquire(-1) end,
      "bad argument #1 to 'acquire' (timeout must be a non-negative number)")
  end)

  it("refuses a timeout with a non-blocking acquire", function()
    assert.has_error(function() threading.Lock():acquire(false, 1) end,
      "bad argument #2 to 'acquire' (cannot specify a timeout for a non-blocking call)")
  end)

  it("refuses a blocking flag that is not a boolean", function()
    assert.has_error(function() threading.Lock():acquire("yes") end,
      "bad argument #1 to 'acquire' (boolean expected, got string)")
  end)

  it("refuses a self that is not a lock", function()
    local lock = threading.Lock()
    assert.has_error(function() lock.acquire(42) end,
      "bad argument #1 to 'acquire' (threading.Lock or threading.RLock expected, got number)")
  end)
end)

describe("RLock", function()
  it("can be acquired again by its owner", function()
    local r = threading.RLock()
    assert.is_true(r:acquire())
    assert.is_true(r:acquire(false))
    r:release()
    r:release()
    assert.is_false(r:locked())
  end)

  it("stays held until released as often as acquired", function()
    local r = threading.RLock()
    r:acquire()
    r:acquire()
    r:release()
    local t = threading.start(function(l) return l:acquire(false) end, r)
    assert.same({ true, false }, { t:join(10) })
    r:release()
  end)

  it("refuses a release by a thread that does not own it", function()
    local r = threading.RLock()
    r:acquire()
    local t = threading.start(function(l) return pcall(l.release, l) end, r)
    local ok, pok, err = t:join(10)
    assert.is_true(ok)
    assert.is_false(pok)
    assert.truthy(err:find("cannot release un-acquired lock", 1, true))
    r:release()
  end)

  it("refuses a release when not held at all", function()
    assert.has_error(function() threading.RLock():release() end,
      "calling 'release' on bad self (cannot release un-acquired lock)")
  end)

  it("supports with", function()
    local r = threading.RLock()
    assert.equal(3, r:with(function() return r:with(function() return 3 end) end))
    assert.is_false(r:locked())
  end)
end)
