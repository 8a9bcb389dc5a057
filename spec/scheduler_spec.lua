-- async.scheduler(): a scheduler that an outside event loop steps.
local threading = require("threading")
local async = require("threading.async")
local http = require("threading.http")
local server = require("server")
local helpers = require("helpers")

describe("async.scheduler()", function()
  it("runs spawned tasks at the next step, and says when none is left", function()
    local s, ran = async.scheduler(), false
    s:spawn(function() ran = true end)
    assert.is_false(ran)
    local delay, left = s:step()
    assert.is_true(ran)
    assert.is_nil(delay)
    assert.equal(0, left)
    s:close()
  end)

  it("returns the time until a sleeping task's deadline", function()
    local s = async.scheduler()
    s:spawn(function() async.sleep(30) end)
    local delay, left = s:step()
    assert.equal(1, left)
    assert.is_true(delay > 0 and delay <= 30, tostring(delay))
    s:close()
  end)

  it("runs at the next step a task that a thread woke meanwhile", function()
    local s, got = async.scheduler(), nil
    s:fd() -- the wake-up also writes the descriptor
    local f = threading.Future()
    s:spawn(function() got = select(2, f:await()) end)
    assert.equal(1, select(2, s:step()))
    threading.start(function(x) x:set_result("v") end, f):join(10)
    assert.equal(0, select(2, s:step()))
    assert.equal("v", got)
    s:close()
  end)

  it("lets a task spawn others that run in the same step", function()
    local s, order = async.scheduler(), {}
    s:spawn(function()
      order[#order + 1] = 1
      async.spawn(function() order[#order + 1] = 2 end)
    end)
    s:step()
    assert.same({ 1, 2 }, order)
    s:close()
  end)

  it("gives a file descriptor, the same each time", function()
    local s = async.scheduler()
    local fd = s:fd()
    assert.equal("number", type(fd))
    assert.equal(fd, s:fd())
    s:close()
  end)

  it("refuses to step inside a running scheduler", function()
    local s = async.scheduler()
    local ok, err = pcall(async.run, function() return s:step() end)
    assert.is_false(ok)
    assert.truthy(err:find("step cannot be called while a scheduler runs", 1, true), err)
    s:close()
  end)

  it("refuses spawn, step and fd once closed", function()
    local s = async.scheduler()
    s:close()
    for _, m in ipairs({ "spawn", "step", "fd" }) do
      local ok, err = pcall(s[m], s, function() end)
      assert.is_false(ok)
      assert.truthy(err:find("calling '" .. m .. "' on bad self (scheduler closed)", 1, true), err)
    end
  end)

  it("raises a bad-argument error for a spawn of something not callable", function()
    local s = async.scheduler()
    assert.has_error(function() s:spawn(5) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
    s:close()
  end)

  it("cancels the HTTP requests of its tasks when closed", function()
    local srv = server.start()
    local s = async.scheduler()
    s:spawn(function() return http.get(srv.url .. "/delay/30") end)
    s:step()
    assert.equal(1, (http._inflight()))
    s:close()
    assert.equal(0, (http._inflight()))
    srv:stop()
  end)

  it("passes a notify that picks a task of a closed scheduler on to a waiting thread (it"
     .. " waited until the task's wait was collected)", function()
    local cond = threading.Condition()
    local s = async.scheduler()
    s:spawn(function()
      cond:acquire()
      cond:wait()
      cond:release()
    end)
    s:step() -- the task waits, its lock released
    local t = helpers.start_cond_waiter(cond)
    s:close()
    cond:acquire()
    cond:notify(1)
    cond:release()
    assert.same({ true, true }, { t:join(10) })
  end)

  it("breaks a Barrier that a task of a closed scheduler waits at (a thread was released"
     .. " with it)", function()
    local b = threading.Barrier(2)
    local s = async.scheduler()
    s:spawn(function() b:wait() end)
    s:step() -- the task waits at the barrier
    s:close()
    assert.same({ nil, "broken" }, { b:wait(10) })
    assert.is_true(b.broken)
  end)
end)
