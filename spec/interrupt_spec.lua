local helpers = require("helpers")

-- Each spec runs a script in the stand-alone interpreter. A helper thread
-- waits until the main thread is blocked where the spec says, sends the
-- process SIGINT, waits until the main thread has left that call, and then
-- reports on the objects: the exit join of the interrupted script waits for
-- it, so its report comes last.
local prelude = [[
  local threading = require("threading")
  local posix = require("testfork")
  local pid = posix.getpid()
  -- run fn(...) in a thread once the main thread blocks on what matches
  -- `on` (a waits() description); fn's return is printed at the end
  local function interrupt_when(on, fn, ...)
    return threading.start(function(pat, pid_, f, ...)
      local th, px = require("threading"), require("testfork")
      local function blocked()
        for _, w in ipairs(th.waits()) do
          if w.name == "MainThread" and (w.blocked_on or ""):find(pat) then return true end
        end
        return false
      end
      local deadline = th.monotonic() + 30
      while not blocked() and th.monotonic() < deadline do th.sleep(0.001) end
      px.kill(pid_, "INT")
      while blocked() and th.monotonic() < deadline do th.sleep(0.001) end
      if f then io.write(tostring(f(...)), "\n") end
    end, on, pid, fn, ...)
  end
]]

local function interrupted(source)
  return helpers.run_script(prelude .. source, { timeout = 60 })
end

describe("Ctrl-C (SIGINT)", function()
  it("interrupts a blocked Lock:acquire with 'interrupted!', and the lock stays free", function()
    local code, out, err = interrupted([[
      local l = threading.Lock()
      local held, done = threading.Event(), threading.Event()
      local holder = threading.start(function(lk, h, d)
        lk:acquire() h:set() d:wait() lk:release()
      end, l, held, done)
      held:wait()
      interrupt_when("Lock", function(lk, d)
        d:set()                       -- the holder releases the lock
        local ok = lk:acquire(true, 10)
        return "lock taken after the interrupt: " .. tostring(ok)
      end, l, done)
      l:acquire()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("lock taken after the interrupt: true\n", out)
  end)

  it("interrupts a blocked Queue:get, and the queue loses no later item to it", function()
    local code, out, err = interrupted([[
      local q = threading.Queue()
      interrupt_when("Queue", function(qq)
        qq:put("item")
        return "left in the queue: " .. tostring(qq:get(false))
      end, q)
      q:get()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("left in the queue: item\n", out)
  end)

  it("interrupts a blocked Thread:join", function()
    local code, out, err = interrupted([[
      local gate = threading.Event()
      local t = threading.start(function(g) g:wait() end, gate)
      interrupt_when("Thread", function(g) g:set() return "released" end, gate)
      t:join()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("released\n", out)
  end)

  it("interrupts a blocked Event:wait", function()
    local code, out, err = interrupted([[
      interrupt_when("Event")
      threading.Event():wait()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("", out)
  end)

  it("interrupts a Condition:wait, which takes its lock back before it raises", function()
    local code, out, err = interrupted([[
      local c, after = threading.Condition(), threading.Event()
      interrupt_when("Condition", function(cc, a)
        a:wait(10)
        return "lock free to another thread: " .. tostring(cc:acquire(false))
      end, c, after)
      c:acquire()
      local ok, e = pcall(c.wait, c)
      io.write("raised ", tostring(e), "; lock held again: ", tostring(c:locked()), "\n")
      after:set()
      error(e, 0)
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("raised interrupted!; lock held again: true\nlock free to another thread: false\n", out)
  end)

  it("interrupts threading.sleep", function()
    local code, out, err = interrupted([[
      interrupt_when("sleep")
      threading.sleep(60)
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("", out)
  end)

  it("interrupts a Semaphore:acquire, which takes nothing", function()
    local code, out, err = interrupted([[
      local s = threading.Semaphore(0)
      interrupt_when("Semaphore", function(ss)
        ss:release()
        return "permit left: " .. tostring(ss:acquire(false))
      end, s)
      s:acquire()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("permit left: true\n", out)
  end)

  it("interrupts Future:result", function()
    local code, out, err = interrupted([[
      local pool = threading.Pool(1)
      local gate = threading.Event()
      local f = pool:submit(function(g) g:wait() return 1 end, gate)
      interrupt_when("Future", function(g) g:set() return "released" end, gate)
      f:result()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("released\n", out)
  end)

  it("interrupts threading.select, and the queue it watched loses no item", function()
    local code, out, err = interrupted([[
      local q = threading.Queue()
      interrupt_when("Port", function(qq)
        qq:put("item")
        return "left in the queue: " .. tostring(qq:get(false))
      end, q)
      threading.select({ q, threading.Event() })
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("left in the queue: item\n", out)
  end)

  it("interrupts threading.wait on several futures, which are left as they were", function()
    local code, out, err = interrupted([[
      local fs = { threading.Future(), threading.Future() }
      interrupt_when("Port", function(list)
        list[2]:set_result(2)
        return "done after: " .. tostring(list[1]:done()) .. ", " .. tostring(list[2]:done())
      end, fs)
      threading.wait(fs)
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("done after: false, true\n", out)
  end)

  it("interrupts a threading.as_completed loop", function()
    local code, out, err = interrupted([[
      local f = threading.Future()
      interrupt_when("Port", function(fut)
        fut:set_result(1)
        return "set after the interrupt: " .. tostring(fut:done())
      end, f)
      for _ in threading.as_completed({ f }) do print("not reached") end
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("set after the interrupt: true\n", out)
  end)

  it("interrupts async.run while all its tasks wait", function()
    local code, out, err = interrupted([[
      local async = require("threading.async")
      local gate = threading.Event()
      interrupt_when(".", function(g) g:set() return "released" end, gate)
      async.run(function()
        async.spawn(function() gate:wait() end)
        gate:wait()
      end)
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("released\n", out)
  end)

  it("raises 'interrupted!' in the coroutine that blocked", function()
    local code, out, err = interrupted([[
      local q = threading.Queue()
      interrupt_when("Queue")
      local co = coroutine.create(function() return q:get() end)
      local ok, e = coroutine.resume(co)
      print("resume", ok, e)
    ]])
    if jit then
      -- one hook for every coroutine: the raise took the host's place, and
      -- resume caught it as it catches any error
      assert.equal(0, code, err)
      assert.equal("resume\tfalse\tinterrupted!\n", out)
    else
      -- resume caught it; the host's own hook, set on the main coroutine,
      -- then stops the script as resume returns
      assert.equal(1, code)
      assert.truthy(err:find("interrupted!", 1, true), err)
      assert.equal("", out)
    end
  end)

  it("leaves SIGINT alone where the host installed no handler: the default"
     .. " action ends the process", function()
    local code, out = interrupted([[
      posix.sigint("default")
      local ok = threading.Lock():acquire(true, 0.01)   -- a wait that times out
      io.write("after a wait: ", posix.sigint(), "\n") io.flush()
      interrupt_when("Event")
      threading.Event():wait(30)
      print("not reached")
    ]])
    assert.equal(128 + 2, code)          -- killed by SIGINT, as without the module
    assert.equal("after a wait: default\n", out)
  end)

  it("leaves an ignored SIGINT ignored", function()
    local code, out = interrupted([[
      posix.sigint("ignore")
      interrupt_when("Event")
      local ok = threading.Event():wait(1)
      io.write("wait returned ", tostring(ok), "; ", posix.sigint(), "\n")
    ]])
    assert.equal(0, code)
    assert.equal("wait returned false; ignore\n", out)
  end)

  it("blocks SIGINT in the module's threads, so that the main thread takes it", function()
    local code, out, err = helpers.run_script([[
      local threading = require("threading")
      local t = threading.start(function() return require("testfork").sigint_blocked() end)
      local p = threading.Pool(1)
      print(select(2, t:join(10)), select(2, p:submit(function()
        return require("testfork").sigint_blocked() end):result(10)),
        require("testfork").sigint_blocked())
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    assert.equal("true\ttrue\tfalse\n", out)
  end)
  it("interrupts async.run while a task waits on an HTTP request, and cancels it", function()
    local srv = require("server").start()
    local code, out, err = interrupted(([[
      local async = require("threading.async")
      local http = require("threading.http")
      -- SIGINT once the task's request is in flight (in the main thread's
      -- own HTTP driver: see http_io.c)
      threading.start(function(pid_)
        local th, px, h = require("threading"), require("testfork"), require("threading.http")
        local deadline = th.monotonic() + 30
        while select(2, h._inflight()) < 1 and th.monotonic() < deadline do th.sleep(0.001) end
        px.kill(pid_, "INT")
      end, pid)
      local ok, e = pcall(async.run, function() return http.get(%q) end)
      io.write("in flight after the interrupt: ", (http._inflight()), "\n")
      error(e, 0)
    ]]):format(srv.url .. "/delay/30"))
    srv:stop()
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("in flight after the interrupt: 0\n", out)
  end)

  it("interrupts async.run while a task waits on an HTTP request, under a host whose"
     .. " SIGINT handler sets no hook (the loop pumped on)", function()
    local srv = require("server").start()
    local code, out, err = interrupted(([[
      local async = require("threading.async")
      local http = require("threading.http")
      posix.sigint("count") -- an embedding host's handler: it only counts
      threading.start(function(pid_)
        local th, px, h = require("threading"), require("testfork"), require("threading.http")
        local deadline = th.monotonic() + 30
        while select(2, h._inflight()) < 1 and th.monotonic() < deadline do th.sleep(0.001) end
        px.kill(pid_, "INT")
      end, pid)
      local t0 = threading.monotonic()
      local ok, e = pcall(async.run, function() return http.get(%q) end)
      io.write("ended within 10 s: ", tostring(threading.monotonic() - t0 < 10),
               "; in flight after: ", (http._inflight()), "\n")
      error(e, 0)
    ]]):format(srv.url .. "/delay/20"))
    srv:stop()
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("ended within 10 s: true; in flight after: 0\n", out)
  end)

  it("interrupts a blocking http.get under a host whose SIGINT handler sets no hook (it"
     .. " ran to its end)", function()
    local srv = require("server").start()
    local code, out, err = interrupted(([[
      local http = require("threading.http")
      posix.sigint("count") -- an embedding host's handler: it only counts
      -- SIGINT once the request is in its transfer
      threading.start(function(pid_)
        local th, px, h = require("threading"), require("testfork"), require("threading.http")
        local deadline = th.monotonic() + 30
        while select(3, h._inflight()) < 1 and th.monotonic() < deadline do th.sleep(0.001) end
        px.kill(pid_, "INT")
      end, pid)
      local t0 = threading.monotonic()
      local ok, e = pcall(http.get, %q)
      -- a 20 s request: run to its end, it would return after 20 s
      io.write("ended within 10 s: ", tostring(threading.monotonic() - t0 < 10),
               "; in transfer after: ", (select(3, http._inflight())),
               "; the host's handler ran: ", posix.sigints(), "\n")
      error(e, 0)
    ]]):format(srv.url .. "/delay/20"))
    srv:stop()
    assert.equal(1, code)
    assert.truthy(err:find("interrupted!", 1, true), err)
    assert.equal("ended within 10 s: true; in transfer after: 0; the host's handler ran: 1\n", out)
  end)
end)
