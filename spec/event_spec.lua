local threading = require("threading")

local blocked_on = require("helpers").blocked_on

describe("Event", function()
  it("starts unset", function()
    assert.is_false(threading.Event():is_set())
  end)

  it("is set by set and unset by clear", function()
    local e = threading.Event()
    e:set()
    assert.is_true(e:is_set())
    e:set()
    assert.is_true(e:is_set())
    e:clear()
    assert.is_false(e:is_set())
    e:clear()
    assert.is_false(e:is_set())
  end)

  it("returns true from wait at once when set", function()
    local e = threading.Event()
    e:set()
    assert.is_true(e:wait())
    assert.is_true(e:wait(0))
  end)

  it("returns false from wait when the timeout passes unset", function()
    local e = threading.Event()
    assert.is_false(e:wait(0.01))
    assert.is_false(e:wait(0))
  end)

  it("wakes a waiter when another thread sets it", function()
    local e = threading.Event()
    local t = threading.start(function(ev) return ev:wait(30) end, e)
    assert.is_true(blocked_on(e, 1))
    e:set()
    assert.same({ true, true }, { t:join(10) })
  end)

  it("wakes every one of a hundred waiters on one set", function()
    local e = threading.Event()
    local threads = {}
    for i = 1, 100 do
      threads[i] = threading.start(function(ev) return ev:wait(60) end, e)
    end
    assert.is_true(blocked_on(e, 100))
    e:set()
    for _, t in ipairs(threads) do
      assert.same({ true, true }, { t:join(30) })
    end
  end)

  it("returns true to a woken waiter even when the flag is cleared at once", function()
    local e = threading.Event()
    local t = threading.start(function(ev) return ev:wait(30) end, e)
    assert.is_true(blocked_on(e, 1))
    e:set()
    e:clear()
    assert.same({ true, true }, { t:join(10) })
    assert.is_false(e:is_set())
  end)

  it("makes later waits block again after clear", function()
    local e = threading.Event()
    e:set()
    e:clear()
    assert.is_false(e:wait(0.01))
  end)

  it("passes between threads as a shared object", function()
    local e = threading.Event()
    local t = threading.start(function(ev) ev:set() end, e)
    assert.is_true(t:join(10))
    assert.is_true(e:is_set())
  end)

  it("ends a cancelled thread blocked in wait promptly", function()
    local e = threading.Event()
    local t = threading.start(function(ev) return ev:wait() end, e)
    assert.is_true(blocked_on(e, 1))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.equal("cancelled", t.status)
    assert.is_false(e:is_set())
  end)
end)

describe("Event bad input", function()
  it("refuses a negative timeout", function()
    assert.has_error(function() threading.Event():wait(-1) end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number)")
  end)

  it("refuses a timeout that is not a number", function()
    assert.has_error(function() threading.Event():wait({}) end,
      "bad argument #1 to 'wait' (number expected, got table)")
  end)

  it("refuses a self that is not an Event", function()
    local e = threading.Event()
    assert.has_error(function() e.set(threading.Lock()) end,
      "bad argument #1 to 'set' (threading.Event expected, got threading.Lock)")
  end)
end)
