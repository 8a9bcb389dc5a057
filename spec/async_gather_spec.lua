local helpers = require("helpers")
local threading = require("threading")
local async = require("threading.async")


-- A function for gather or wait_for that blocks on `ev` and records in
-- log[name] how its wait ended: "set", "timed out" (after 30 s: an
-- implementation that fails to cancel it makes the spec fail, not hang), or
-- the error that ended it.
local function waiter(ev, log, name)
  return function()
    local ok, err = async.pcall(ev.wait, ev, 30)
    log[name] = not ok and err or err and "set" or "timed out"
    if not ok then
      error(err, 0)
    end
    return name
  end
end

describe("async.gather", function()
  it("returns each item's results, packed, in the order of the list", function()
    local pool = threading.Pool(1)
    finally(function() pool:shutdown() end)
    local r = async.run(function()
      local task = async.spawn(function() return "task", 2 end)
      local fut = pool:submit(function(x) return x * 2 end, 21)
      local th = threading.start(function() return "thread" end)
      return async.gather({ function() return 1, nil, 3 end, task, fut, th })
    end)
    assert.same({ { n = 3, 1, nil, 3 }, { n = 2, "task", 2 }, { n = 1, 42 }, { n = 1, "thread" } }, r)
  end)

  it("runs the functions it is given as tasks at the same time", function()
    local r = async.run(function()
      local ev = threading.Event()
      return async.gather({
        function() ev:wait() return "waited" end,
        function() ev:set() return "set" end,
      })
    end)
    assert.same({ { n = 1, "waited" }, { n = 1, "set" } }, r)
  end)

  it("returns an empty list for an empty list", function()
    assert.same({}, async.run(function() return async.gather({}) end))
  end)

  it("raises the first failure without waiting for the other items", function()
    local log = {}
    local r = async.run(function()
      local never = threading.Event()
      local r = { async.pcall(async.gather, {
        waiter(never, log, "blocked"),
        function() error("boom", 0) end,
      }) }
      r[3] = log.blocked
      return r
    end)
    assert.same({ false, "boom", "cancelled" }, r)
  end)

  it("raises the failure that came first, not the first listed", function()
    local err = async.run(function()
      local ev = threading.Event()
      local late = async.spawn(function() ev:wait(30) error("late", 0) end)
      local early = async.spawn(function() ev:set() error("early", 0) end)
      late:await() -- both have failed now, early first
      local _, e = async.pcall(async.gather, { late, early })
      return e
    end)
    assert.equal("early", err)
  end)

  it("cancels the tasks it started when an item fails, and returns once they ended", function()
    local log = {}
    async.run(function()
      local never = threading.Event()
      async.pcall(async.gather, { waiter(never, log, "sibling"), function() error("boom", 0) end })
      -- read before anything else runs: gather returned after the sibling ended
      log.seen = log.sibling
    end)
    assert.equal("cancelled", log.seen)
  end)

  it("leaves a task it was given running when another item fails", function()
    local still_running
    async.run(function()
      local ev = threading.Event()
      local given = async.spawn(function() ev:wait() return "finished" end)
      async.pcall(async.gather, { given, function() error("boom", 0) end })
      still_running = not given:done()
      ev:set()
      assert.same({ true, "finished" }, { given:await() })
    end)
    assert.is_true(still_running)
  end)

  it("raises the error of a failed future", function()
    local err = async.run(function()
      local fut = threading.Future()
      fut:set_exception("future failed")
      local _, e = async.pcall(async.gather, { fut })
      return e
    end)
    assert.equal("future failed", err)
  end)

  it("raises the error of a failed thread, as its join gives it", function()
    local saved = threading.excepthook
    threading.excepthook = function() end
    local ok, err, joined = pcall(async.run, function()
      local th = threading.start(function() error("thread failed", 0) end)
      local _, e = async.pcall(async.gather, { th })
      return e, select(2, th:join())
    end)
    threading.excepthook = saved
    assert.is_true(ok, err)
    assert.matches("thread failed", err, 1, true)
    assert.equal(joined, err)
  end)

  it("raises cancelled for a task of the list that was cancelled", function()
    local err = async.run(function()
      local ev = threading.Event()
      local t = async.spawn(function() ev:wait(30) end)
      local _, e = async.pcall(async.gather, { t, function() t:cancel() end })
      return e
    end)
    assert.equal("cancelled", err)
  end)

  it("returns nil and timeout when the timeout passes, having cancelled its tasks", function()
    local log = {}
    local r = async.run(function()
      local never = threading.Event()
      local r = { async.gather({ waiter(never, log, "slow") }, 0.05) }
      r[3] = log.slow
      return r
    end)
    assert.same({ nil, "timeout", "cancelled" }, r)
  end)

  it("cancels the tasks it started when the calling task is cancelled", function()
    local log = {}
    local r = async.run(function()
      local never, started = threading.Event(), threading.Event()
      local caller = async.spawn(function()
        return async.gather({ waiter(never, log, "child"), function() started:set() end })
      end)
      started:wait()
      caller:cancel()
      return { caller:await() }
    end)
    assert.same({ false, "cancelled" }, r)
    assert.equal("cancelled", log.child)
  end)

  it("does not report the errors of the tasks it started as never awaited", function()
    local code, out, err = helpers.run_script([[
      local async = require("threading.async")
      async.run(function()
        async.pcall(async.gather, { function() error("one", 0) end, function() error("two", 0) end })
      end)
      io.write("end\n")
    ]])
    assert.equal(0, code, err)
    assert.equal("end\n", out)
    assert.equal("", err)
  end)

  it("refuses a list that is not a table", function()
    assert.has_error(function()
      async.run(function() async.gather("tasks") end)
    end, "bad argument #1 to 'gather' (table expected, got string)")
  end)

  it("names the item of the list that cannot be awaited", function()
    assert.has_error(function()
      async.run(function() async.gather({ function() end, 42 }) end)
    end, "bad argument #1 to 'gather' (list[2]: function, task, future or thread expected, got number)")
  end)

  it("refuses a task of another scheduler", function()
    -- no finally holding the scheduler: busted's context is reached by the
    -- functions later specs send to threads, and a scheduler cannot leave
    -- its state
    local s = async.scheduler()
    local other = s:spawn(function() threading.Event():wait(30) end)
    local ok, err = pcall(async.run, function() async.gather({ other }) end)
    s:close()
    assert.is_false(ok)
    local want = "bad argument #1 to 'gather' (list[1]: function, task, future or thread expected,"
      .. " got a task of another scheduler)"
    assert.truthy(err:find(want, 1, true), err)
  end)

  it("refuses the calling task, which would wait for itself", function()
    assert.has_error(function()
      async.run(function() async.gather({ async.current() }) end)
    end, "bad argument #1 to 'gather' (list[1]: function, task, future or thread expected,"
      .. " got the calling task itself)")
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function()
      async.run(function() async.gather({}, -1) end)
    end, "bad argument #2 to 'gather' (timeout must be a non-negative number)")
  end)

  it("can only be called from a task", function()
    assert.has_error(function() async.gather({}) end,
      "async.gather must be called from a task (inside async.run)")
  end)
end)

describe("async.wait_for", function()
  it("returns the results of the function when it finishes in time", function()
    assert.same({ 1, nil, 3 }, { async.run(function()
      return async.wait_for(5, function(a, b) async.sleep(0) return a, nil, b end, 1, 3)
    end) })
  end)

  it("waits without a limit when the timeout is nil", function()
    assert.equal("done", async.run(function()
      return async.wait_for(nil, function() async.sleep(0.01) return "done" end)
    end))
  end)

  it("returns nil and timeout, having cancelled the function's task and waited for its end", function()
    local log = {}
    local r = async.run(function()
      local never = threading.Event()
      local r = { async.wait_for(0.05, waiter(never, log, "slow")) }
      r[3] = log.slow
      return r
    end)
    assert.same({ nil, "timeout", "cancelled" }, r)
  end)

  it("raises the function's error", function()
    assert.has_error(function()
      async.run(function() async.wait_for(5, function() error("failed", 0) end) end)
    end, "failed")
  end)

  it("cancels a task it was given when the timeout passes", function()
    local r = async.run(function()
      local t = async.spawn(function() threading.Event():wait(30) end)
      local r = { async.wait_for(0.05, t) }
      r[3] = t:cancelled()
      return r
    end)
    assert.same({ nil, "timeout", true }, r)
  end)

  it("leaves a future it was given alone when the timeout passes", function()
    local r = async.run(function()
      local fut = threading.Future()
      local r = { async.wait_for(0.05, fut) }
      r[3] = fut:done()
      fut:set_result("later")
      r[4] = select(2, fut:result())
      return r
    end)
    assert.same({ nil, "timeout", false, "later" }, r)
  end)

  it("cancels the function's task when the calling task is cancelled", function()
    local log = {}
    local r = async.run(function()
      local never, started = threading.Event(), threading.Event()
      local caller = async.spawn(function()
        return async.wait_for(nil, function()
          started:set()
          return waiter(never, log, "child")()
        end)
      end)
      started:wait()
      caller:cancel()
      return { caller:await() }
    end)
    assert.same({ false, "cancelled" }, r)
    assert.equal("cancelled", log.child)
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function()
      async.run(function() async.wait_for(-1, function() end) end)
    end, "bad argument #1 to 'wait_for' (timeout must be a non-negative number)")
  end)

  it("refuses something that cannot be awaited", function()
    assert.has_error(function()
      async.run(function() async.wait_for(1, "fn") end)
    end, "bad argument #2 to 'wait_for' (function, task, future or thread expected, got string)")
  end)

  it("can only be called from a task", function()
    assert.has_error(function() async.wait_for(1, function() end) end,
      "async.wait_for must be called from a task (inside async.run)")
  end)
end)

