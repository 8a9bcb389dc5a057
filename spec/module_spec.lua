local threading = require("threading")

describe("threading module", function()
  it("sleeps for about the time asked", function()
    local t0 = threading.monotonic()
    threading.sleep(0.05)
    local slept = threading.monotonic() - t0
    assert.is_true(slept >= 0.045 and slept < 5)
  end)

  it("returns at once from sleep(0)", function()
    threading.sleep(0)
  end)

  it("refuses a negative sleep", function()
    assert.has_error(function() threading.sleep(-1) end,
      "bad argument #1 to 'sleep' (timeout must be a non-negative number)")
  end)

  it("refuses a sleep that is not a number", function()
    assert.has_error(function() threading.sleep("1s") end,
      "bad argument #1 to 'sleep' (number expected, got string)")
  end)

  it("has a monotonic clock that does not go back", function()
    local a = threading.monotonic()
    local b = threading.monotonic()
    assert.is_true(b >= a)
  end)

  it("counts at least one processor", function()
    assert.is_true(threading.cpu_count() >= 1)
  end)

  it("loads in a thread that requires it again", function()
    local t = threading.start(function() return require("threading").cpu_count() end)
    assert.same({ true, threading.cpu_count() }, { t:join(10) })
  end)
end)
