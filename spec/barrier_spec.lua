local threading = require("threading")

-- Wait until `n` threads wait at barrier `b`; bounded, so that a bug fails
-- instead of hanging.
local function waiting(b, n)
  local deadline = threading.monotonic() + 30
  repeat
    if b.n_waiting >= n then
      return true
    end
    threading.sleep(0.002)
  until threading.monotonic() > deadline
  return false
end

-- Start n threads that each call b:wait(...) once; returns them.
local function start_waits(b, n, ...)
  local threads = {}
  for i = 1, n do
    threads[i] = threading.start(function(bar, ...) return bar:wait(...) end, b, ...)
  end
  return threads
end

-- Join every thread; returns the list of their first results.
local function join_all(threads)
  local results = {}
  for i, t in ipairs(threads) do
    local r = { t:join(30) }
    assert.is_true(r[1])
    results[i] = { r[2], r[3] }
  end
  return results
end

describe("Barrier", function()
  it("reports parties, n_waiting and broken", function()
    local b = threading.Barrier(3)
    assert.equal(3, b.parties)
    assert.equal(0, b.n_waiting)
    assert.is_false(b.broken)
    local threads = start_waits(b, 2, 30)
    assert.is_true(waiting(b, 2))
    assert.equal(2, b.n_waiting)
    assert.equal(3, b:wait(30))
    join_all(threads)
    assert.equal(0, b.n_waiting)
  end)

  it("gives each party a distinct index in 1..parties, the last arrival parties", function()
    local b = threading.Barrier(4)
    local threads = start_waits(b, 3, 30)
    assert.is_true(waiting(b, 3))
    assert.equal(4, b:wait(30))
    local seen = {}
    for _, r in ipairs(join_all(threads)) do
      seen[#seen + 1] = r[1]
    end
    table.sort(seen)
    assert.same({ 1, 2, 3 }, seen)
  end)

  it("releases a barrier of one party at once", function()
    local b = threading.Barrier(1)
    assert.equal(1, b:wait())
    assert.equal(1, b:wait())
  end)

  it("is reusable across generations", function()
    local b = threading.Barrier(2)
    local t = threading.start(function(bar)
      local sum = 0
      for _ = 1, 3 do
        sum = sum + bar:wait(30)
      end
      return sum
    end, b)
    local sum = 0
    for _ = 1, 3 do
      sum = sum + b:wait(30)
    end
    local ok, other = t:join(30)
    assert.is_true(ok)
    assert.equal(9, sum + other)
  end)

  it("runs the action once, in the last thread to arrive, before any is released", function()
    local ran, runner = threading.Value(0), threading.Value(0)
    local b = threading.Barrier(3, function()
      ran:add(1)
      runner:set(threading.get_ident())
    end)
    local threads = {}
    for i = 1, 3 do
      threads[i] = threading.start(function(bar, r, who)
        local index = bar:wait(30)
        return index, r:get(), index == bar.parties and who:get() == threading.get_ident()
      end, b, ran, runner)
    end
    for _, t in ipairs(threads) do
      local ok, index, seen, is_runner = t:join(30)
      assert.is_true(ok)
      assert.equal(1, seen)
      assert.equal(index == 3, is_runner)
    end
    assert.equal(1, ran:get())
  end)

  it("keeps every generation of 8 threads x 2,000 waits, none lost or doubled", function()
    local rounds, parties = 2000, 8
    local gen = threading.Value(0)
    local b = threading.Barrier(parties, function() gen:add(1) end)
    local threads = {}
    for i = 1, parties do
      threads[i] = threading.start(function(bar, g, n)
        local index_sum, runs, wrong = 0, 0, 0
        for r = 1, n do
          local index = assert(bar:wait(60))
          index_sum = index_sum + index
          if index == bar.parties then
            runs = runs + 1
          end
          -- released after round r's action and before round r + 1's
          if g:get() ~= r then
            wrong = wrong + 1
          end
        end
        return index_sum, runs, wrong
      end, b, gen, rounds)
    end
    local index_sum, runs = 0, 0
    for _, t in ipairs(threads) do
      local ok, sum, r, wrong = t:join(120)
      assert.is_true(ok, tostring(sum))
      assert.equal(0, wrong)
      index_sum = index_sum + sum
      runs = runs + r
    end
    assert.equal(rounds, gen:get())
    assert.equal(rounds, runs)
    assert.equal(rounds * parties * (parties + 1) / 2, index_sum)
    assert.is_false(b.broken)
  end)

  it("breaks for everyone when the action fails, raising in the thread that ran it", function()
    local b = threading.Barrier(3, function() error("action failed", 0) end)
    local threads = {}
    for i = 1, 3 do
      threads[i] = threading.start(function(bar)
        return pcall(function() return bar:wait(30) end)
      end, b)
    end
    local raised, broken = 0, 0
    for _, t in ipairs(threads) do
      local ok, called, a, c = t:join(30)
      assert.is_true(ok)
      if called then
        assert.same({ nil, "broken" }, { a, c })
        broken = broken + 1
      else
        assert.equal("action failed", a)
        raised = raised + 1
      end
    end
    assert.equal(1, raised)
    assert.equal(2, broken)
    assert.is_true(b.broken)
  end)

  it("breaks when a wait times out, and stays broken", function()
    local b = threading.Barrier(2)
    assert.same({ nil, "broken" }, { b:wait(0.01) })
    assert.is_true(b.broken)
    assert.same({ nil, "broken" }, { b:wait(30) })
  end)

  it("uses its default timeout when wait has none", function()
    local b = threading.Barrier(2, nil, 0.01)
    assert.same({ nil, "broken" }, { b:wait() })
    assert.is_true(b.broken)
  end)

  it("breaks for the other waiters when one wait times out", function()
    local b = threading.Barrier(3)
    local threads = start_waits(b, 1)
    assert.is_true(waiting(b, 1))
    assert.same({ nil, "broken" }, { b:wait(0.01) })
    assert.same({ { nil, "broken" } }, join_all(threads))
  end)

  it("does not break when a waiter's timeout passes while the action runs", function()
    local started = threading.Value(0)
    local b = threading.Barrier(2, function()
      -- outlast the first waiter's timeout
      threading.sleep(math.max(0, started:get() + 1.2 - threading.monotonic()))
    end)
    local t = threading.start(function(bar, st)
      st:set(threading.monotonic())
      return bar:wait(1)
    end, b, started)
    assert.is_true(waiting(b, 1))
    assert.equal(2, b:wait())
    assert.same({ true, 1 }, { t:join(30) })
    assert.is_false(b.broken)
  end)

  it("breaks on abort for current and later waits, until reset", function()
    local b = threading.Barrier(2)
    local threads = start_waits(b, 1)
    assert.is_true(waiting(b, 1))
    b:abort()
    assert.same({ { nil, "broken" } }, join_all(threads))
    assert.is_true(b.broken)
    assert.same({ nil, "broken" }, { b:wait() })
    b:reset()
    assert.is_false(b.broken)
    threads = start_waits(b, 1, 30)
    local mine = b:wait(30)
    local theirs = join_all(threads)[1][1]
    assert.same({ 1, 2 }, { math.min(mine, theirs), math.max(mine, theirs) })
  end)

  it("fails current waiters on reset and stays usable", function()
    local b = threading.Barrier(2)
    local threads = start_waits(b, 1)
    assert.is_true(waiting(b, 1))
    b:reset()
    assert.same({ { nil, "broken" } }, join_all(threads))
    assert.is_false(b.broken)
    assert.equal(0, b.n_waiting)
    threads = start_waits(b, 1, 30)
    local mine = b:wait(30)
    local theirs = join_all(threads)[1][1]
    assert.same({ 1, 2 }, { math.min(mine, theirs), math.max(mine, theirs) })
  end)

  it("ends a cancelled thread blocked in wait promptly and breaks the barrier", function()
    local b = threading.Barrier(3)
    local others = start_waits(b, 1)
    local t = threading.start(function(bar) return bar:wait() end, b)
    assert.is_true(waiting(b, 2))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.equal("cancelled", t.status)
    assert.same({ { nil, "broken" } }, join_all(others))
    assert.is_true(b.broken)
  end)
end)

describe("Barrier bad input", function()
  it("refuses zero or negative parties", function()
    assert.has_error(function() threading.Barrier(0) end,
      "bad argument #1 to 'Barrier' (parties must be a positive integer)")
    assert.has_error(function() threading.Barrier(-3) end,
      "bad argument #1 to 'Barrier' (parties must be a positive integer)")
  end)

  it("refuses fractional parties", function()
    assert.has_error(function() threading.Barrier(2.5) end,
      "bad argument #1 to 'Barrier' (parties must be a positive integer)")
  end)

  it("refuses parties that are not a number", function()
    assert.has_error(function() threading.Barrier("2") end,
      "bad argument #1 to 'Barrier' (number expected, got string)")
  end)

  it("refuses an action that is not a function", function()
    assert.has_error(function() threading.Barrier(2, 42) end,
      "bad argument #2 to 'Barrier' (function expected, got number)")
  end)

  it("refuses an action that cannot be transferred", function()
    local co = coroutine.create(function() end)
    local ok, err = pcall(threading.Barrier, 2, function() return co end)
    assert.is_false(ok)
    assert.matches("cannot transfer value at action", err, 1, true)
  end)

  it("refuses a negative default timeout", function()
    assert.has_error(function() threading.Barrier(2, nil, -1) end,
      "bad argument #3 to 'Barrier' (timeout must be a non-negative number)")
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function() threading.Barrier(2):wait(-1) end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number)")
  end)
end)
