local threading = require("threading")

local blocked_on = require("helpers").blocked_on

-- How many units can be taken right now without blocking (gives them back).
local function units(s)
  local n = 0
  while s:acquire(false) do
    n = n + 1
  end
  if n > 0 then
    s:release(n)
  end
  return n
end

describe("Semaphore", function()
  it("holds one unit by default", function()
    assert.equal(1, units(threading.Semaphore()))
  end)

  it("hands out its units and then refuses a non-blocking acquire", function()
    local s = threading.Semaphore(2)
    assert.is_true(s:acquire())
    assert.is_true(s:acquire(true))
    assert.is_false(s:acquire(false))
  end)

  it("returns false when a timed acquire runs out", function()
    local s = threading.Semaphore(0)
    assert.is_false(s:acquire(0.01))
    assert.is_false(s:acquire(true, 0))
  end)

  it("adds n units on release(n)", function()
    local s = threading.Semaphore(0)
    s:release(3)
    assert.equal(3, units(s))
  end)

  it("may be released past its initial value", function()
    local s = threading.Semaphore(1)
    s:release()
    assert.equal(2, units(s))
  end)

  it("wakes a blocked acquirer on release from another thread", function()
    local s = threading.Semaphore(0)
    local t = threading.start(function(sem) return sem:acquire(30) end, s)
    assert.is_true(blocked_on(s, 1))
    s:release()
    assert.same({ true, true }, { t:join(10) })
  end)

  it("wakes n blocked acquirers on release(n)", function()
    local s = threading.Semaphore(0)
    local threads = {}
    for i = 1, 3 do
      threads[i] = threading.start(function(sem) return sem:acquire(30) end, s)
    end
    assert.is_true(blocked_on(s, 3))
    s:release(3)
    for _, t in ipairs(threads) do
      assert.same({ true, true }, { t:join(10) })
    end
    assert.equal(0, units(s))
  end)

  it("lets three threads in at once with three units", function()
    local s = threading.Semaphore(3)
    local b = threading.Barrier(3)
    local threads = {}
    for i = 1, 3 do
      threads[i] = threading.start(function(sem, bar)
        sem:acquire()
        -- all three meet here only if all three are inside together
        local index = bar:wait(30)
        sem:release()
        return index
      end, s, b)
    end
    local seen = {}
    for _, t in ipairs(threads) do
      local ok, index = t:join(30)
      assert.is_true(ok)
      seen[#seen + 1] = index
    end
    table.sort(seen)
    assert.same({ 1, 2, 3 }, seen)
  end)

  it("never lets more than three of sixteen threads in (measured peak)", function()
    local s = threading.Semaphore(3)
    local inside, peak = threading.Value(0), threading.Value(0)
    local threads = {}
    for i = 1, 16 do
      threads[i] = threading.start(function(sem, ins, pk)
        for _ = 1, 200 do
          sem:acquire()
          local n = ins:add(1)
          local p = pk:get()
          while n > p and not pk:compare_and_set(p, n) do
            p = pk:get()
          end
          local x = 0
          for k = 1, 200 do
            x = x + k
          end
          ins:add(-1)
          sem:release()
        end
      end, s, inside, peak)
    end
    for _, t in ipairs(threads) do
      assert.is_true(t:join(60))
    end
    assert.is_true(peak:get() >= 1)
    assert.is_true(peak:get() <= 3, "peak was " .. peak:get())
    assert.equal(0, inside:get())
    assert.equal(3, units(s))
  end)

  it("gives the unit back after with, also when fn fails", function()
    local s = threading.Semaphore(1)
    assert.equal("done", s:with(function() return "done" end))
    local ok, err = pcall(s.with, s, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.equal(1, units(s))
  end)

  it("holds a unit until its guard is released", function()
    local s = threading.Semaphore(1)
    local g = s:guard()
    assert.equal(0, units(s))
    g:release()
    assert.equal(1, units(s))
  end)

  it("ends a cancelled thread blocked in acquire promptly", function()
    local s = threading.Semaphore(0)
    local t = threading.start(function(sem) return sem:acquire() end, s)
    assert.is_true(blocked_on(s, 1))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.equal("cancelled", t.status)
  end)

  it("still wakes the other acquirers after one of them is cancelled", function()
    local s = threading.Semaphore(0)
    local victim = threading.start(function(sem) return sem:acquire() end, s)
    local other = threading.start(function(sem) return sem:acquire(30) end, s)
    assert.is_true(blocked_on(s, 2))
    victim:cancel()
    s:release()
    assert.same({ false, "cancelled" }, { victim:join(10) })
    assert.same({ true, true }, { other:join(30) })
  end)
end)

describe("BoundedSemaphore", function()
  it("refuses to be released past its initial value", function()
    local s = threading.BoundedSemaphore(2)
    assert.has_error(function() s:release() end,
      "calling 'release' on bad self (semaphore released too many times)")
    assert.equal(2, units(s))
  end)

  it("refuses release(n) that would pass its initial value, changing nothing", function()
    local s = threading.BoundedSemaphore(2)
    s:acquire()
    assert.has_error(function() s:release(2) end,
      "calling 'release' on bad self (semaphore released too many times)")
    assert.equal(1, units(s))
    s:release()
    assert.equal(2, units(s))
  end)

  it("wakes a blocked acquirer like a Semaphore", function()
    local s = threading.BoundedSemaphore(1)
    s:acquire()
    local t = threading.start(function(sem) return sem:acquire(30) end, s)
    assert.is_true(blocked_on(s, 1))
    s:release()
    assert.same({ true, true }, { t:join(10) })
  end)

  it("has with and guard", function()
    local s = threading.BoundedSemaphore()
    assert.equal(3, s:with(function(x) return x end, 3))
    s:guard():release()
    assert.equal(1, units(s))
  end)
end)

describe("Semaphore bad input", function()
  it("refuses a negative initial value", function()
    assert.has_error(function() threading.Semaphore(-1) end,
      "bad argument #1 to 'Semaphore' (value must be a non-negative integer)")
    assert.has_error(function() threading.BoundedSemaphore(-1) end,
      "bad argument #1 to 'BoundedSemaphore' (value must be a non-negative integer)")
  end)

  it("refuses a fractional initial value", function()
    assert.has_error(function() threading.Semaphore(1.5) end,
      "bad argument #1 to 'Semaphore' (value must be a non-negative integer)")
  end)

  it("refuses an initial value that is not a number", function()
    assert.has_error(function() threading.Semaphore("3") end,
      "bad argument #1 to 'Semaphore' (number expected, got string)")
  end)

  it("refuses a release count below one", function()
    local s = threading.Semaphore()
    assert.has_error(function() s:release(0) end,
      "bad argument #1 to 'release' (count must be a positive integer)")
    assert.has_error(function() s:release(-2) end,
      "bad argument #1 to 'release' (count must be a positive integer)")
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function() threading.Semaphore():acquire(-1) end,
      "bad argument #1 to 'acquire' (timeout must be a non-negative number)")
  end)

  it("refuses a timeout with a non-blocking acquire", function()
    assert.has_error(function() threading.Semaphore():acquire(false, 1) end,
      "bad argument #2 to 'acquire' (cannot specify a timeout for a non-blocking call)")
  end)

  it("refuses a blocking flag that is not a boolean", function()
    assert.has_error(function() threading.Semaphore():acquire("yes") end,
      "bad argument #1 to 'acquire' (boolean expected, got string)")
  end)

  it("refuses a self that is not a semaphore", function()
    local s = threading.Semaphore()
    assert.has_error(function() s.release(threading.Lock()) end,
      "bad argument #1 to 'release' (threading.Semaphore expected, got threading.Lock)")
  end)
end)
