-- threading.Future(): futures that their maker completes, in threads and tasks.
local threading = require("threading")
local async = require("threading.async")
local helpers = require("helpers")

describe("threading.Future()", function()
  it("gives result() in another thread the values set_result set", function()
    local f = threading.Future()
    local t = threading.start(function(fut) return fut:result(10) end, f)
    f:set_result(1, "two", { 3 })
    local ok, a, b, c, d = t:join(10)
    assert.is_true(ok)
    assert.same({ true, 1, "two", { 3 } }, { a, b, c, d })
  end)

  it("returns true and nothing from result() after set_result()", function()
    local f = threading.Future()
    f:set_result()
    assert.equal(1, select("#", f:result(0)))
    assert.is_true((f:result(0)))
    assert.is_true(f:done())
  end)

  it("fails with the error set_exception set, for result() and exception()", function()
    local f = threading.Future()
    threading.start(function(fut) fut:set_exception("boom") end, f):join(10)
    assert.same({ false, "boom" }, { f:result(10) })
    assert.equal("boom", f:exception(10))
  end)

  it("waits in result() until it is set, and times out before", function()
    local f = threading.Future()
    assert.same({ nil, "timeout" }, { f:result(0.05) })
    assert.is_false(f:done())
  end)

  it("refuses a second outcome with a standard error", function()
    local f = threading.Future()
    f:set_result(1)
    assert.has_error(function() f:set_result(2) end,
      "calling 'set_result' on bad self (future already done)")
    assert.has_error(function() f:set_exception("x") end,
      "calling 'set_exception' on bad self (future already done)")
    assert.same({ true, 1 }, { f:result(0) })
  end)

  it("refuses set_exception without an error value", function()
    local f = threading.Future()
    assert.has_error(function() f:set_exception() end,
      "bad argument #1 to 'set_exception' (value expected)")
  end)

  it("refuses to complete a pool's future", function()
    local pool = threading.Pool(1)
    local gate = threading.Event()
    local f = pool:submit(function(g) g:wait(10) return 1 end, gate)
    assert.has_error(function() f:set_result(2) end,
      "calling 'set_result' on bad self (a pool's future is completed by its pool)")
    gate:set()
    assert.same({ true, 1 }, { f:result(10) })
    pool:shutdown()
  end)

  it("refuses a result that cannot move, naming where it was, and stays pending", function()
    local f = threading.Future()
    local ok, err = pcall(f.set_result, f, 1, coroutine.create(function() end))
    assert.is_false(ok)
    assert.matches("result%[2%]", err)
    assert.is_false(f:done())
  end)

  it("moves to running with set_running_or_notify_cancel, then refuses it again", function()
    local f = threading.Future()
    assert.is_true(f:set_running_or_notify_cancel())
    assert.is_true(f:running())
    assert.is_false(f:cancel())
    assert.has_error(function() f:set_running_or_notify_cancel() end,
      "calling 'set_running_or_notify_cancel' on bad self (future already running)")
    f:set_result("ok")
    assert.same({ true, "ok" }, { f:result(0) })
  end)

  it("returns false from set_running_or_notify_cancel once cancelled", function()
    local f = threading.Future()
    assert.is_true(f:cancel())
    assert.is_false(f:set_running_or_notify_cancel())
    assert.same({ false, "cancelled" }, { f:result(0) })
    assert.has_error(function() f:set_result(1) end,
      "calling 'set_result' on bad self (future already done)")
  end)

  it("completes threading.wait and as_completed", function()
    local a, b = threading.Future(), threading.Future()
    threading.start(function(x) x:set_result("a") end, a):join(10)
    local done, pending = threading.wait({ a, b }, 10, "first_completed")
    assert.equal(1, #done)
    assert.equal(1, #pending)
    b:set_result("b")
    local n = 0
    for fut in threading.as_completed({ a, b }, 10) do
      assert.is_true(fut:done())
      n = n + 1
    end
    assert.equal(2, n)
  end)

  it("is taken by threading.select when a thread sets it", function()
    local f, q = threading.Future(), threading.Queue()
    local t = threading.start(function(x) x:set_result("v") end, f)
    assert.same({ 2, true, "v" }, { threading.select({ q, f }, 10) })
    t:join(10)
  end)

  it("wakes a task awaiting it when a thread sets it, while other tasks run", function()
    local r = async.run(function()
      local f, go = threading.Future(), threading.Event()
      -- the thread sets the future only after another task has run, which
      -- it can only while the first is suspended in result()
      local setter = threading.start(function(fut, g)
        assert(g:wait(10))
        fut:set_result(42)
      end, f, go)
      async.spawn(function() go:set() end)
      local ok, v = f:result(10)
      setter:await(10)
      return { ok, v }
    end)
    assert.same({ true, 42 }, r)
  end)
  describe("add_done_callback", function()
    it("calls the callback at once, with the future, when the future is done", function()
      local f, got = threading.Future(), nil
      f:set_result(1)
      f:add_done_callback(function(x) got = x end)
      assert.equal(f, got)
    end)

    it("calls the callback once a thread completes the future, in the task's state", function()
      local me = threading.get_ident()
      local calls, where = 0, nil
      async.run(function()
        local f = threading.Future()
        f:add_done_callback(function()
          calls = calls + 1
          where = threading.get_ident()
        end)
        threading.start(function(x) x:set_result("v") end, f)
        f:await(10)
      end)
      assert.equal(1, calls)
      assert.equal(me, where)
    end)

    it("calls the callbacks in the order they were added", function()
      local order = {}
      async.run(function()
        local f = threading.Future()
        for i = 1, 5 do
          f:add_done_callback(function() order[#order + 1] = i end)
        end
        threading.start(function(x) x:set_result() end, f)
        f:await(10)
      end)
      assert.same({ 1, 2, 3, 4, 5 }, order)
    end)

    it("runs the callbacks of a future the last task awaited before async.run returns (bug)", function()
      -- regression: the scheduler returned as soon as its last task ended,
      -- while the wake-up of the task running the callbacks was still on its
      -- way to the port
      local missed = 0
      for _ = 1, 200 do
        local ran = false
        async.run(function()
          local f = threading.Future()
          f:add_done_callback(function() ran = true end)
          threading.start(function(x) x:set_result() end, f)
          f:await(10)
        end)
        if not ran then
          missed = missed + 1
        end
      end
      assert.equal(0, missed)
    end)

    it("calls the callback of a pool's future in the state that added it", function()
      local pool = threading.Pool(2)
      local me, where = threading.get_ident(), nil
      async.run(function()
        local f = pool:submit(function() return threading.get_ident() end)
        f:add_done_callback(function(x)
          where = threading.get_ident()
          assert.not_equal(where, select(2, x:result()))
        end)
        f:await(10)
      end)
      pool:shutdown()
      assert.equal(me, where)
    end)

    it("reports a callback's error on stderr and still calls the others", function()
      local code, out, err = helpers.run_script([[
        local threading = require("threading")
        local async = require("threading.async")
        async.run(function()
          local f = threading.Future()
          f:add_done_callback(function() error("boom") end)
          f:add_done_callback(function() io.write("second ran\n") end)
          f:set_result()
        end)
      ]])
      assert.equal(0, code, err)
      assert.equal("second ran\n", out)
      assert.truthy(err:find("error in a done callback", 1, true), err)
      assert.truthy(err:find("boom", 1, true), err)
    end)

    it("refuses a pending future outside a task: its callbacks need a scheduler", function()
      local f = threading.Future()
      local ok, err = pcall(f.add_done_callback, f, function() end)
      assert.is_false(ok)
      assert.truthy(err:find("outside a threading.async task", 1, true), err)
    end)

    it("raises a bad-argument error for a callback that is not callable", function()
      local f = threading.Future()
      f:set_result()
      assert.has_error(function()
        f:add_done_callback(5)
      end, "bad argument #1 to 'add_done_callback' (function expected, got number)")
    end)

    it("remove_done_callback removes every registration of a callback and counts them", function()
      local calls = 0
      local removed
      async.run(function()
        local f = threading.Future()
        local function cb() calls = calls + 1 end
        f:add_done_callback(cb)
        f:add_done_callback(cb)
        removed = f:remove_done_callback(cb)
        f:set_result()
        f:await()
      end)
      assert.equal(2, removed)
      assert.equal(0, calls)
    end)

    it("drops the callbacks of a future still pending when async.run returns", function()
      local ran = false
      async.run(function()
        threading.Future():add_done_callback(function() ran = true end)
      end)
      assert.is_false(ran)
    end)
  end)
end)
