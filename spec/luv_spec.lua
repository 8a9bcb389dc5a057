-- threading.async.luv: a scheduler stepped by a real luv loop, awaiting the
-- module's objects while the loop's own timers keep firing. Each spec proves
-- the loop was never blocked the same way: the other side (a thread) acts
-- only once a luv timer has ticked several times, which it cannot do while
-- a task blocks the loop.
local has_luv, uv = pcall(require, "luv")
local threading = require("threading")
local http = require("threading.http")
local server = require("server")

-- Under ThreadSanitizer a running libuv loop makes TSan report races that
-- are not there: libuv is not built with TSan and makes some descriptors
-- with raw system calls that TSan never sees, so when another thread's
-- open() reuses such a descriptor number, TSan reports a race on the
-- number (a bare luv timer run beside spec/thread_spec.lua shows it, with
-- no threading object in the loop at all). These specs run under ASan and
-- valgrind; under TSan, spec/scheduler_spec.lua drives the same port and
-- its descriptor without libuv.
local skip = (not has_luv and "lua-luv is not installed")
  or (os.getenv("TSAN_OPTIONS") and "not under ThreadSanitizer, whose view of libuv's descriptors is wrong")
local describe_luv = describe
if skip then
  describe_luv = function(name)
    pending(name .. ": " .. skip)
  end
end

describe_luv("threading.async.luv", function()
  local tl = require("threading.async.luv")

  -- A luv timer every 5 ms; at its 5th tick it sets the returned Event.
  local function heartbeat()
    local ticks, ev = 0, threading.Event()
    local t = uv.new_timer()
    t:start(5, 5, function()
      ticks = ticks + 1
      if ticks == 5 then
        ev:set()
      end
    end)
    local h = { ev = ev }
    function h.stop()
      t:stop()
      t:close()
      return ticks
    end
    return h
  end

  local function finish(s)
    s:close()
    uv.run("nowait") -- lets libuv finish closing the handles
  end

  -- A spec that fails may leave its heartbeat running, which would keep
  -- the next spec's loop alive for good: close whatever it left open.
  after_each(function()
    uv.walk(function(handle)
      if not handle:is_closing() then
        handle:close()
      end
    end)
    uv.run("nowait")
  end)

  -- uv.run(), stopped with an error if the loop still runs after a
  -- generous limit: a task that failed before it stopped its heartbeat
  -- fails its spec instead of hanging the suite. The watchdog is unref'd,
  -- so it never keeps the loop alive itself.
  local function run_loop()
    local limit, late = 60, false
    local dog = uv.new_timer()
    dog:start(limit * 1000, 0, function()
      late = true
      uv.stop()
    end)
    dog:unref()
    local r = uv.run()
    dog:close()
    uv.run("nowait")
    if late then
      error("the loop was still running after " .. limit .. " s", 2)
    end
    return r
  end

  it("awaits a future that a thread completes after the loop has ticked", function()
    local s, hb, got = tl.scheduler(uv), heartbeat(), nil
    local f = threading.Future()
    threading.start(function(ev, x)
      assert(ev:wait(30))
      x:set_result(42)
    end, hb.ev, f)
    s:spawn(function()
      got = select(2, f:await())
      hb.stop()
    end)
    run_loop()
    assert.equal(42, got)
    finish(s)
  end)

  it("awaits a thread's join", function()
    local s, hb, got = tl.scheduler(uv), heartbeat(), nil
    local t = threading.start(function(ev)
      assert(ev:wait(30))
      return "joined"
    end, hb.ev)
    s:spawn(function()
      got = select(2, t:await())
      hb.stop()
    end)
    run_loop()
    assert.equal("joined", got)
    finish(s)
  end)

  it("awaits a queue item", function()
    local s, hb, got = tl.scheduler(uv), heartbeat(), nil
    local q = threading.Queue()
    threading.start(function(ev, queue)
      assert(ev:wait(30))
      queue:put("item")
    end, hb.ev, q)
    s:spawn(function()
      got = q:get()
      hb.stop()
    end)
    run_loop()
    assert.equal("item", got)
    finish(s)
  end)

  it("awaits an HTTP request while the loop's timer keeps firing", function()
    local srv = server.start()
    local s, hb, status, ticks = tl.scheduler(uv), heartbeat(), nil, nil
    s:spawn(function()
      status = assert(http.get(srv.url .. "/delay/0.3")).status
      ticks = hb.stop()
    end)
    run_loop()
    srv:stop()
    assert.equal(200, status)
    assert.is_true(ticks >= 1, "the loop was blocked during the request")
    finish(s)
  end)

  it("runs many tasks of pool futures in one loop", function()
    local s = tl.scheduler(uv)
    local pool = threading.Pool(2)
    local sum = 0
    for i = 1, 100 do
      s:spawn(function()
        -- read sum after the await: the other tasks add to it meanwhile
        local _, v = pool:submit(function(x) return x * 2 end, i):await()
        sum = sum + v
      end)
    end
    run_loop()
    pool:shutdown()
    assert.equal(10100, sum)
    finish(s)
  end)

  it("honours a task's sleep through a luv timer", function()
    local s, woke = tl.scheduler(uv), false
    s:spawn(function()
      threading.sleep(0.05)
      woke = true
    end)
    run_loop()
    assert.is_true(woke)
    finish(s)
  end)

  it("lets uv.run return once its tasks have ended", function()
    local s = tl.scheduler(uv)
    s:spawn(function() end)
    assert.is_false(run_loop()) -- no active handle left
    assert.equal(0, s:tasks())
    finish(s)
  end)

  it("refuses to spawn once closed", function()
    local s = tl.scheduler(uv)
    finish(s)
    local ok, err = pcall(s.spawn, s, function() end)
    assert.is_false(ok)
    assert.truthy(err:find("scheduler closed", 1, true), err)
  end)
end)
