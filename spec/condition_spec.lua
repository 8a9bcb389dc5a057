local threading = require("threading")

local blocked_on = require("helpers").blocked_on

-- Can another thread take the lock right now?
local function free_elsewhere(c)
  local t = threading.start(function(cond)
    local got = cond:acquire(false)
    if got then
      cond:release()
    end
    return got
  end, c)
  local ok, got = t:join(10)
  assert.is_true(ok)
  return got
end

-- Start `n` threads that each take the lock, count themselves in, wait
-- and record the order they woke in; returns once all of them wait. Returns
-- the threads, the count of woken ones and a semaphore released by each
-- thread once it has woken.
local function start_waiters(c, n)
  local entered, done = threading.Semaphore(0), threading.Semaphore(0)
  local arrived, woken = threading.Value(0), threading.Value(0)
  local threads = {}
  for i = 1, n do
    threads[i] = threading.start(function(cond, ent, dn, arr, wok)
      cond:acquire()
      local arrival = arr:add(1)
      ent:release()
      local notified = cond:wait(30)
      local rank = wok:add(1)
      cond:release()
      dn:release()
      return arrival, rank, notified
    end, c, entered, done, arrived, woken)
  end
  -- a thread releases the lock only inside wait, so once the lock is ours
  -- after every thread entered, all of them are queued
  for _ = 1, n do
    assert.is_true(entered:acquire(30))
  end
  return threads, woken, done
end

describe("Condition", function()
  it("uses a new RLock when none is given", function()
    local c = threading.Condition()
    assert.is_true(c:acquire())
    assert.is_true(c:acquire(false))
    c:release()
    c:release()
    assert.has_error(function() c:release() end,
      "calling 'release' on bad self (cannot release un-acquired lock)")
  end)

  it("uses the Lock it is given", function()
    local lock = threading.Lock()
    local c = threading.Condition(lock)
    assert.is_true(c:acquire())
    assert.is_true(lock:locked())
    c:release()
    assert.is_false(lock:locked())
  end)

  it("tells whether its lock is held with locked, as Python 3.14 does", function()
    local c = threading.Condition()
    assert.is_false(c:locked())
    c:acquire()
    assert.is_true(c:locked())
    local t = threading.start(function(cond) return cond:locked() end, c)
    assert.same({ true, true }, { t:join(10) })
    c:release()
    assert.is_false(c:locked())
  end)

  it("takes every acquire form of a Lock", function()
    local c = threading.Condition(threading.Lock())
    assert.is_true(c:acquire(0.01))
    local t = threading.start(function(cond)
      return cond:acquire(false), cond:acquire(0.01), cond:acquire(true, 0)
    end, c)
    assert.same({ true, false, false, false }, { t:join(10) })
    c:release()
  end)

  it("returns false from wait when its timeout passes, holding the lock again", function()
    local c = threading.Condition(threading.Lock())
    c:acquire()
    assert.is_false(c:wait(0.01))
    assert.is_false(free_elsewhere(c))
    c:release()
    assert.is_true(free_elsewhere(c))
  end)

  it("returns true from wait when notified", function()
    local c = threading.Condition()
    c:acquire()
    local t = threading.start(function(cond)
      cond:acquire()
      cond:notify()
      cond:release()
    end, c)
    assert.is_true(c:wait(30))
    c:release()
    assert.is_true(t:join(10))
  end)

  it("releases every level of an RLock while waiting and restores them", function()
    local c = threading.Condition(threading.RLock())
    for _ = 1, 3 do
      c:acquire()
    end
    local t = threading.start(function(cond)
      local got = cond:acquire(30)
      cond:notify()
      cond:release()
      return got
    end, c)
    assert.is_true(c:wait(30))
    assert.same({ true, true }, { t:join(10) })
    for _ = 1, 3 do
      c:release()
    end
    assert.has_error(function() c:release() end,
      "calling 'release' on bad self (cannot release un-acquired lock)")
  end)

  it("wakes exactly two of five waiters on notify(2), the longest waiting first", function()
    local c = threading.Condition()
    local threads, woken, done = start_waiters(c, 5)
    c:acquire()
    c:notify(2)
    c:release()
    assert.is_true(done:acquire(30))
    assert.is_true(done:acquire(30))
    c:acquire()
    assert.equal(2, woken:get())
    c:notify_all()
    c:release()
    for _, t in ipairs(threads) do
      local ok, arrival, rank, notified = t:join(30)
      assert.is_true(ok)
      assert.is_true(notified)
      assert.equal(rank <= 2, arrival <= 2)
    end
    assert.equal(5, woken:get())
  end)

  it("wakes all of fifty waiters on notify_all", function()
    local c = threading.Condition(threading.Lock())
    local threads, woken = start_waiters(c, 50)
    c:acquire()
    c:notify_all()
    c:release()
    for _, t in ipairs(threads) do
      local ok, _, _, notified = t:join(30)
      assert.is_true(ok)
      assert.is_true(notified)
    end
    assert.equal(50, woken:get())
  end)

  it("does nothing on notify with no waiters", function()
    local c = threading.Condition()
    c:acquire()
    c:notify()
    c:notify(3)
    c:notify_all()
    assert.is_false(c:wait(0))
    c:release()
  end)

  it("does not wake a thread that starts waiting after the notify", function()
    local c = threading.Condition()
    c:acquire()
    c:notify()
    assert.is_false(c:wait(0.01))
    c:release()
  end)

  it("hands items from producers to consumers", function()
    local c = threading.Condition()
    local items, taken = threading.Value(0), threading.Value(0)
    local consumers = {}
    for i = 1, 4 do
      consumers[i] = threading.start(function(cond, its, tak)
        local mine = 0
        for _ = 1, 50 do
          cond:acquire()
          assert(cond:wait_for(function() return its:get() > 0 end, 30))
          its:add(-1)
          tak:add(1)
          cond:release()
          mine = mine + 1
        end
        return mine
      end, c, items, taken)
    end
    for _ = 1, 200 do
      c:acquire()
      items:add(1)
      c:notify()
      c:release()
    end
    for _, t in ipairs(consumers) do
      assert.same({ true, 50 }, { t:join(30) })
    end
    assert.equal(200, taken:get())
    assert.equal(0, items:get())
  end)

  it("returns the predicate's value at once from wait_for when it already holds", function()
    local c = threading.Condition()
    c:acquire()
    assert.equal("ready", c:wait_for(function() return "ready" end))
    c:release()
  end)

  it("returns from wait_for once another thread makes the predicate true", function()
    local c = threading.Condition()
    local n = threading.Value(0)
    local t = threading.start(function(cond, v)
      for _ = 1, 3 do
        cond:acquire()
        v:add(1)
        cond:notify()
        cond:release()
      end
    end, c, n)
    c:acquire()
    assert.is_true(c:wait_for(function() return n:get() == 3 end, 30))
    c:release()
    assert.is_true(t:join(10))
  end)

  it("returns the predicate's last value from wait_for on timeout, checking it after the wait", function()
    local c = threading.Condition()
    local calls = 0
    c:acquire()
    assert.is_nil(c:wait_for(function() calls = calls + 1 end, 0.01))
    assert.is_true(calls >= 2)
    assert.equal(false, c:wait_for(function() return false end, 0))
    c:release()
  end)

  it("releases the lock after with, also when fn fails", function()
    local c = threading.Condition()
    assert.same({ 1, 2 }, { c:with(function(a, b) return a, b end, 1, 2) })
    local ok, err = pcall(c.with, c, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.is_true(free_elsewhere(c))
  end)

  it("holds the lock until its guard is released", function()
    local c = threading.Condition()
    local g = c:guard()
    assert.is_false(free_elsewhere(c))
    g:release()
    assert.is_true(free_elsewhere(c))
  end)

  it("ends a cancelled thread blocked in wait promptly", function()
    local c = threading.Condition()
    local t = threading.start(function(cond)
      cond:with(function() cond:wait() end)
    end, c)
    assert.is_true(blocked_on(c, 1))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.equal("cancelled", t.status)
  end)

  it("holds the lock again when a cancelled wait raises", function()
    -- over a plain Lock, which stays locked when the thread that holds it
    -- ends: the wait took it back before raising the cancellation
    local lock = threading.Lock()
    local c = threading.Condition(lock)
    local t = threading.start(function(cond)
      cond:acquire()
      cond:wait()
    end, c)
    assert.is_true(blocked_on(c, 1))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.is_true(lock:locked())
    lock:release()
    assert.is_true(free_elsewhere(c))
  end)

  it("ends a cancelled thread blocked in wait_for promptly", function()
    local c = threading.Condition()
    local t = threading.start(function(cond)
      cond:with(function() cond:wait_for(function() return false end) end)
    end, c)
    assert.is_true(blocked_on(c, 1))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
  end)
end)

describe("Condition bad input", function()
  it("refuses a lock that is not a Lock or RLock", function()
    assert.has_error(function() threading.Condition(42) end,
      "bad argument #1 to 'Condition' (threading.Lock or threading.RLock expected, got number)")
  end)

  it("refuses to wait without the lock", function()
    local c = threading.Condition()
    assert.has_error(function() c:wait(0) end,
      "calling 'wait' on bad self (cannot wait on un-acquired lock)")
    assert.has_error(function() c:wait_for(function() return true end) end,
      "calling 'wait_for' on bad self (cannot wait on un-acquired lock)")
  end)

  it("refuses to wait while another thread holds the lock", function()
    local c = threading.Condition(threading.Lock())
    c:acquire()
    local t = threading.start(function(cond)
      local ok, err = pcall(function() cond:wait(0) end)
      return ok, err
    end, c)
    local _, ok, err = t:join(10)
    c:release()
    assert.is_false(ok)
    assert.matches("calling 'wait' on bad self (cannot wait on un-acquired lock)", err, 1, true)
  end)

  it("refuses to notify without the lock", function()
    local c = threading.Condition()
    assert.has_error(function() c:notify() end,
      "calling 'notify' on bad self (cannot notify on un-acquired lock)")
    assert.has_error(function() c:notify_all() end,
      "calling 'notify_all' on bad self (cannot notify on un-acquired lock)")
  end)

  it("refuses a negative or fractional notify count", function()
    local c = threading.Condition()
    c:acquire()
    assert.has_error(function() c:notify(-1) end,
      "bad argument #1 to 'notify' (count must be a non-negative integer)")
    assert.has_error(function() c:notify(1.5) end,
      "bad argument #1 to 'notify' (count must be a non-negative integer)")
    c:release()
  end)

  it("refuses a negative timeout", function()
    local c = threading.Condition()
    c:acquire()
    assert.has_error(function() c:wait(-1) end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number)")
    assert.has_error(function() c:wait_for(function() end, -1) end,
      "bad argument #2 to 'wait_for' (timeout must be a non-negative number)")
    c:release()
  end)

  it("refuses a predicate that is not a function", function()
    local c = threading.Condition()
    c:acquire()
    assert.has_error(function() c:wait_for(42) end,
      "bad argument #1 to 'wait_for' (function expected, got number)")
    c:release()
  end)

  it("refuses a timeout with a non-blocking acquire", function()
    assert.has_error(function() threading.Condition():acquire(false, 1) end,
      "bad argument #2 to 'acquire' (cannot specify a timeout for a non-blocking call)")
  end)

  it("refuses a self that is not a Condition", function()
    local c = threading.Condition()
    assert.has_error(function() c.notify(threading.Lock()) end,
      "bad argument #1 to 'notify' (threading.Condition expected, got threading.Lock)")
  end)
end)
