local helpers = require("helpers")
local threading = require("threading")
local async = require("threading.async")

local function new_pool(n)
  local pool = threading.Pool(n)
  finally(function()
    pool:shutdown(false, true)
    pool:shutdown()
  end)
  return pool
end

describe("threading.async", function()
  it("returns the results of the function that run started", function()
    assert.same({ 1, nil, 3 }, { async.run(function(a, b) return a, nil, b end, 1, 3) })
  end)

  it("raises the error of the function that run started", function()
    assert.has_error(function()
      async.run(function() error("task failed", 0) end)
    end, "task failed")
  end)

  it("returns from run only when every spawned task has finished", function()
    local tasks = {}
    async.run(function()
      for i = 1, 5 do
        tasks[i] = async.spawn(function() threading.sleep(0.01 * i) return i end)
      end
    end)
    for i = 1, 5 do
      assert.is_true(tasks[i]:done())
      assert.same({ true, i }, { tasks[i]:await() })
    end
  end)

  it("overlaps the sleeps of many tasks in one OS thread", function()
    local t0 = threading.monotonic()
    async.run(function()
      for _ = 1, 50 do
        async.spawn(function() threading.sleep(0.2) end)
      end
    end)
    local elapsed = threading.monotonic() - t0
    assert.is_true(elapsed >= 0.19)
    assert.is_true(elapsed < 5, "50 sleeps of 0.2 s took " .. elapsed .. " s")
  end)

  it("returns a task's results from await inside another task", function()
    local got = { async.run(function()
      local t = async.spawn(function(x) threading.sleep(0.01) return x + 1, "ok" end, 41)
      return t:await()
    end) }
    assert.same({ true, 42, "ok" }, got)
  end)

  it("returns false and the error from await on a failed task", function()
    local ok, err = async.run(function()
      local t = async.spawn(function() error("inner", 0) end)
      return t:await()
    end)
    assert.is_false(ok)
    assert.equal("inner", err)
  end)

  it("returns nil, 'timeout' from await when the task is not done in time", function()
    local r = { async.run(function()
      local ev = threading.Event()
      local t = async.spawn(function() ev:wait() end)
      local a, b = t:await(0.01)
      ev:set()
      return a, b
    end) }
    assert.same({ nil, "timeout" }, r)
  end)

  it("cancels a blocked task", function()
    local r = { async.run(function()
      local t = async.spawn(function() threading.sleep(30) end)
      threading.sleep(0)
      assert(t:cancel())
      local ok, err = t:await()
      return ok, err, t:cancelled()
    end) }
    assert.same({ false, "cancelled", true }, r)
  end)

  it("never runs a task cancelled before it started", function()
    local ran = false
    async.run(function()
      local t = async.spawn(function() ran = true end)
      t:cancel()
    end)
    assert.is_false(ran)
  end)

  it("hands a Lock from task to task without blocking the thread", function()
    local log = {}
    async.run(function()
      local lock = threading.Lock()
      lock:acquire()
      local b = async.spawn(function()
        log[#log + 1] = "b waits"
        assert(lock:acquire())
        log[#log + 1] = "b has it"
        lock:release()
      end)
      threading.sleep(0) -- b runs and blocks
      log[#log + 1] = "a releases"
      lock:release()
      b:await()
    end)
    assert.same({ "b waits", "a releases", "b has it" }, log)
  end)

  it("waits for a Lock held by another OS thread while other tasks run", function()
    local lock, locked, go = threading.Lock(), threading.Event(), threading.Event()
    local holder = threading.start(function(l, ev, g)
      l:acquire()
      ev:set()
      g:wait(10)
      l:release()
    end, lock, locked, go)
    local got = async.run(function()
      assert(locked:wait(10))
      local waiter = async.spawn(function() return lock:acquire(10) end)
      -- if acquire blocked the OS thread, this task would never run
      async.spawn(function() go:set() end)
      return select(2, waiter:await())
    end)
    assert.is_true(got)
    lock:release()
    assert.is_true((holder:join(10)))
  end)

  it("times out a Lock acquire inside a task", function()
    local lock = threading.Lock()
    lock:acquire()
    local got = async.run(function() return lock:acquire(0.02) end)
    lock:release()
    assert.is_false(got)
  end)

  it("keeps an RLock exclusive between tasks of one thread", function()
    local log = {}
    async.run(function()
      local rl = threading.RLock()
      rl:acquire()
      rl:acquire()
      local b = async.spawn(function()
        assert(rl:acquire())
        log[#log + 1] = "b"
        rl:release()
      end)
      threading.sleep(0)
      log[#log + 1] = "a"
      rl:release()
      rl:release()
      b:await()
    end)
    assert.same({ "a", "b" }, log)
  end)

  it("awaits a Future of a pool", function()
    local pool = new_pool(2)
    local r = { async.run(function()
      local f = pool:submit(function(x) return x * 3 end, 5)
      return f:await(10)
    end) }
    assert.same({ true, 15 }, r)
  end)

  it("awaits many pool futures at once, in one thread", function()
    local pool = new_pool(4)
    local sum = async.run(function()
      local tasks = {}
      for i = 1, 200 do
        tasks[i] = async.spawn(function()
          return select(2, pool:submit(function(x) return x end, i):await())
        end)
      end
      local s = 0
      for i = 1, 200 do
        s = s + select(2, tasks[i]:await())
      end
      return s
    end)
    assert.equal(200 * 201 / 2, sum)
  end)

  it("runs Pool:map and Pool:shutdown inside a task while other tasks go on", function()
    local pool = threading.Pool(2)
    local ev = threading.Event()
    local r = async.run(function()
      -- the workers wait for an event that only another task sets: if map
      -- blocked the thread, that task could not run
      async.spawn(function() ev:set() end)
      local got = pool:map(function(e) return e:wait(10) end, { ev, ev, ev }, 2)
      pool:shutdown()
      return got
    end)
    assert.same({ n = 3, true, true, true }, r)
    assert.equal(0, pool.workers)
  end)

  it("waits at the end of a <close> Pool's scope in a task while other tasks go on", function()
    if _VERSION ~= "Lua 5.4" then
      return -- to-be-closed variables exist from Lua 5.4 on
    end
    -- the worker waits for an event that only another task sets, once the
    -- scope is ending: if the close blocked the thread, it would time out
    local chunk = assert(load([[
      local threading, async = ...
      local closing, gate, f = threading.Event(), threading.Event(), nil
      return async.run(function()
        async.spawn(function()
          closing:wait()
          gate:set()
        end)
        do
          local pool <close> = threading.Pool(1)
          f = pool:submit(function(e) return e:wait(5) end, gate)
          closing:set()
        end
        return f:done(), f:result(0)
      end)
    ]]))
    -- done, and the worker's wait saw the gate set: result gives true, true
    assert.same({ true, true, true }, { chunk(threading, async) })
  end)

  it("refuses Pool:shutdown() from a task in one of its own workers (bug: it waited for itself)", function()
    local pool = new_pool(1)
    local f = pool:submit(function(p)
      local a = require("threading.async")
      return a.run(function()
        -- bounded, so that a wait for itself fails the spec, not hangs it
        return a.wait_for(5, function() return pcall(p.shutdown, p) end)
      end)
    end, pool)
    local _, ok, err = f:result(10)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cannot wait for a pool's workers from one of them", 1, true))
  end)

  it("returns nil, 'timeout' from Future:result inside a task", function()
    local pool = new_pool(1)
    local go = threading.Event()
    local f = pool:submit(function(g) return g:wait(10) end, go)
    local r = { async.run(function() return f:result(0.02) end) }
    go:set()
    assert.same({ nil, "timeout" }, r)
    assert.same({ true, true }, { f:result(10) })
  end)

  it("uses threading.wait and as_completed inside tasks", function()
    local pool = new_pool(2)
    local n = async.run(function()
      local fs = {}
      for i = 1, 6 do
        fs[i] = pool:submit(function(x) return x end, i)
      end
      local done = threading.wait(fs, 10)
      local seen = 0
      for _ in threading.as_completed(fs, 10) do
        seen = seen + 1
      end
      return #done + seen
    end)
    assert.equal(12, n)
  end)

  it("wakes a task in as_completed at each end, in the order they end", function()
    -- a thread ends the futures one at a time, last first, and waits for
    -- the task's acknowledgement of each: nothing else can wake the task
    local fs = {}
    for i = 1, 50 do fs[i] = threading.Future() end
    local ack = threading.Queue()
    local t = threading.start(function(list, q)
      for i = #list, 1, -1 do
        list[i]:set_result(i)
        if not q:get(10) then return false end
      end
      return true
    end, fs, ack)
    local order = async.run(function()
      local got = {}
      local step = threading.as_completed(fs, 30)
      local f = step()
      while f ~= nil do
        got[#got + 1] = select(2, f:result())
        ack:put(true)
        f = step()
      end
      return got
    end)
    assert.same({ true, true }, { t:join(30) })
    local want = {}
    for i = 50, 1, -1 do want[#want + 1] = i end
    assert.same(want, order)
  end)

  it("joins a Thread inside a task", function()
    local r = { async.run(function()
      local t = threading.start(function() return "joined" end)
      return t:await(10)
    end) }
    assert.same({ true, "joined" }, r)
  end)

  it("raises from join on a thread that was never started, inside a task", function()
    assert.has_error(function()
      async.run(function() threading.Thread(function() end):join() end)
    end, "cannot join a thread before it is started")
  end)

  it("waits for an Event set by another task", function()
    local r = async.run(function()
      local ev = threading.Event()
      local w = async.spawn(function() return ev:wait(10) end)
      async.spawn(function() ev:set() end)
      return select(2, w:await())
    end)
    assert.is_true(r)
  end)

  it("passes items through a Queue between tasks and a thread", function()
    local q, out = threading.Queue(2), threading.Queue()
    local consumer = threading.start(function(inq, outq)
      local sum = 0
      for item in inq:iter() do sum = sum + item end
      outq:put(sum)
    end, q, out)
    local got = async.run(function()
      for i = 1, 20 do
        assert(q:put(i)) -- the queue holds 2: puts wait for the thread
      end
      q:shutdown()
      return out:get(10)
    end)
    assert.equal(210, got)
    assert.is_true((consumer:join(10)))
  end)

  it("returns nil, 'empty' from a timed Queue get inside a task", function()
    local q = threading.Queue()
    assert.same({ nil, "empty" }, { async.run(function() return q:get(true, 0.02) end) })
  end)

  it("lets tasks wait on a Condition and a Semaphore", function()
    local log = {}
    async.run(function()
      local cond, sem = threading.Condition(), threading.Semaphore(0)
      local ready = false
      local waiter = async.spawn(function()
        cond:acquire()
        local ok = cond:wait_for(function() return ready end, 10)
        cond:release()
        log[#log + 1] = "condition"
        sem:release()
        return ok
      end)
      async.spawn(function()
        cond:acquire()
        ready = true
        cond:notify()
        cond:release()
      end)
      assert(sem:acquire(10))
      log[#log + 1] = "semaphore"
      assert(waiter:await())
    end)
    assert.same({ "condition", "semaphore" }, log)
  end)

  it("wakes a task's Event:wait for a set() followed at once by clear() (the scheduler"
     .. " polled the flag and missed it)", function()
    local seen = async.run(function()
      local ev = threading.Event()
      local waiter = async.spawn(function() return ev:wait(2) end)
      async.sleep(0)              -- the waiter runs and blocks
      ev:set()
      ev:clear()                  -- before the scheduler looks again
      local ok, r = waiter:await()
      return ok and r
    end)
    assert.is_true(seen)
  end)

  it("keeps a notify that comes as a task's Condition:wait releases the lock (it read"
     .. " the change counter after releasing)", function()
    local missed = 0
    for _ = 1, 100 do
      local notified = async.run(function()
        local cond, done = threading.Condition(), threading.Event()
        cond:acquire()
        -- tries the lock until the task's wait releases it, notifies, and
        -- stays (its end would be a change that wakes the task anyway)
        local t = threading.start(function(c, d)
          while not c:acquire(false) do end
          c:notify()
          c:release()
          d:wait(10)
        end, cond, done)
        local r = cond:wait(1)
        cond:release()
        done:set()
        t:await(10)
        return r
      end)
      if not notified then missed = missed + 1 end
    end
    assert.equal(0, missed)
  end)

  it("lets notify(1) pick the oldest waiter, a thread before a later task (every task"
     .. " woke on any change)", function()
    local cond = threading.Condition()
    local thread_waiter = helpers.start_cond_waiter(cond)
    local task_result = async.run(function()
      cond:acquire()
      local notifier = threading.start(function(c) c:acquire() c:notify(1) c:release() end, cond)
      local r = cond:wait(0.5)    -- not picked: it times out
      cond:release()
      notifier:await(10)
      return r
    end)
    assert.is_false(task_result)
    assert.same({ true, true }, { thread_waiter:join(10) })
  end)

  it("does not wake a task's Condition:wait for changes elsewhere", function()
    local r = async.run(function()
      local cond, busy, stop = threading.Condition(), threading.Queue(), threading.Event()
      local churn = threading.start(function(q, s)
        while not s:is_set() do q:put(1) q:get() end
      end, busy, stop)
      cond:acquire()
      local woke = cond:wait(0.3)
      cond:release()
      stop:set()
      churn:await(10)
      return woke
    end)
    assert.is_false(r)
  end)

  it("refuses, inside a task, to release an RLock or wait on a Condition another task holds", function()
    local r = { async.run(function()
      local rl, cond = threading.RLock(), threading.Condition()
      local holder = async.spawn(function()
        rl:acquire()
        cond:acquire()
        threading.sleep(0.05)
        cond:release()
        rl:release()
      end)
      threading.sleep(0)
      local ok1, err1 = pcall(function() rl:release() end)
      local ok2, err2 = pcall(function() cond:wait(0) end)
      holder:await()
      return ok1, err1, ok2, err2
    end) }
    assert.is_false(r[1])
    assert.truthy(r[2]:find("calling 'release' on bad self (cannot release un-acquired lock)", 1, true))
    assert.is_false(r[3])
    assert.truthy(r[4]:find("calling 'wait' on bad self (cannot wait on un-acquired lock)", 1, true))
  end)

  it("lets a task wait on a Condition over a lock it took through the lock (ownership was"
     .. " kept per handle)", function()
    local r = { async.run(function()
      local lock = threading.RLock()
      local cond = threading.Condition(lock)
      lock:acquire()
      local woke = cond:wait(0.01)
      cond:notify()
      lock:release()
      return woke, lock:locked()
    end) }
    assert.same({ false, false }, r)
  end)

  it("lets another task take a Condition's lock that a task took through the Condition"
     .. " and released through the lock (the task stayed its owner)", function()
    local got = async.run(function()
      local lock = threading.Lock()
      local cond = threading.Condition(lock)
      cond:acquire()
      lock:release()
      local _, ok = async.spawn(function()
        local took = cond:acquire(2)
        if took then cond:release() end
        return took
      end):await()
      return ok
    end)
    assert.is_true(got)
  end)

  it("does not let code outside a task re-enter an RLock the task holds (its thread"
     .. " owned it)", function()
    local s, rl, go = async.scheduler(), threading.RLock(), threading.Event()
    local task = s:spawn(function()
      rl:acquire()
      go:wait()
      rl:release()
    end)
    s:step()
    local reentered = rl:acquire(false)
    if reentered then rl:release() end
    local refused = not pcall(function() rl:release() end)
    go:set()
    for _ = 1, 1000 do
      if select(2, s:step()) == 0 then break end
    end
    s:close()
    assert.is_false(reentered)
    assert.is_true(refused)
    assert.is_true(task:done())
    assert.is_false(rl:locked())
  end)

  it("raises a cancellation that comes while a task's Condition:wait takes its lock back"
     .. " only once it holds the lock (it raised without the lock)", function()
    local r = { async.run(function()
      local cond = threading.Condition()
      local waiter
      waiter = async.spawn(function()
        cond:acquire()
        local ok, err = async.pcall(function() return cond:wait(10) end)
        local held = pcall(function() cond:release() end)
        return ok, err, held
      end)
      async.sleep(0)            -- the waiter waits, its lock released
      cond:acquire()
      cond:notify()
      async.sleep(0)            -- it is notified, and tries to take the lock back
      async.sleep(0)
      waiter:cancel()
      async.sleep(0)
      cond:release()
      return waiter:await(10)
    end) }
    assert.same({ true, false, "cancelled", true }, r)
  end)

  it("keeps an RLock that a finished task left held from every later task, and from"
     .. " the thread after run (the thread re-entered it)", function()
    local rl = threading.RLock()
    local r = { async.run(function()
      async.spawn(function() rl:acquire() end):await()
      local tries = {}
      for i = 1, 3 do
        local _, got = async.spawn(function() return rl:acquire(false) end):await()
        tries[i] = got
      end
      return rl:locked(), tries
    end) }
    r[3] = rl:acquire(false)
    assert.same({ true, { false, false, false }, false }, r)
  end)

  it("names the thread whose task holds a lock as its owner in threading.waits", function()
    local owner = async.run(function()
      local rl = threading.RLock()
      rl:acquire()
      local t = threading.Thread{ name = "waiter", target = function(l) l:acquire() l:release() end,
                                  args = { rl } }:start()
      assert.is_true(helpers.blocked_on(rl, 1))
      local name
      for _, w in ipairs(threading.waits()) do
        if w.name == "waiter" then name = w.owner end
      end
      rl:release()
      t:join(10)
      return name
    end)
    assert.equal(threading.current_thread().name, owner)
  end)

  it("mixes sleeps, queues, locks, futures and threads in one run and leaves nothing running", function()
    local pool = new_pool(2)
    local before = threading.active_count()
    local lock = threading.Lock()
    local counter = threading.Value(0)
    local results = threading.Queue(3) -- small: putters wait for the getter
    local tasks
    local total = async.run(function()
      tasks = {}
      for i = 1, 10 do
        tasks[i] = async.spawn(function()
          threading.sleep(0.001 * (i % 3))
          lock:acquire()
          counter:add(1)
          lock:release()
          local f = pool:submit(function(x) return x * x end, i)
          local t = threading.start(function(x) return -x end, i)
          local _, sq = f:await(10)
          local _, neg = t:await(10)
          assert(results:put(sq + neg, true, 10))
        end)
      end
      local sum = 0
      for _ = 1, 10 do
        sum = sum + assert(results:get(true, 10))
      end
      return sum
    end)
    local expect = 0
    for i = 1, 10 do
      expect = expect + i * i - i
    end
    assert.equal(expect, total)
    assert.equal(10, counter:get())
    for i = 1, 10 do
      assert.is_true(tasks[i]:done())
    end
    pool:shutdown()
    -- the pool's workers started after `before` and are joined by now
    assert.equal(before, threading.active_count())
  end)

  it("lets a task await inside async.pcall", function()
    local r = { async.run(function()
      return async.pcall(function()
        threading.sleep(0.01)
        error("caught", 0)
      end)
    end) }
    assert.same({ false, "caught" }, r)
  end)

  it("stops the tasks of a cancelled thread", function()
    local started = threading.Event()
    local t = threading.start(function(ev)
      local th = require("threading")
      local a = require("threading.async")
      a.run(function()
        for _ = 1, 3 do
          a.spawn(function() th.sleep(30) end)
        end
        ev:set()
        th.Event():wait()
      end)
    end, started)
    assert.is_true(started:wait(10))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
  end)

  it("blocks as before outside a task", function()
    local lock = threading.Lock()
    assert.is_true(lock:acquire(1))
    assert.is_false(lock:acquire(0.01))
    lock:release()
    assert.is_nil(async.current())
  end)

  it("works as Future:result when a future is awaited outside a task", function()
    local pool = new_pool(1)
    local f = pool:submit(function() return "plain" end)
    assert.same({ true, "plain" }, { f:await(10) })
  end)

  it("refuses to await an unfinished task outside its scheduler", function()
    local ok, err = async.run(function()
      local t = async.spawn(function() threading.sleep(0.01) end)
      -- a plain coroutine is not a task of the scheduler
      return coroutine.wrap(function() return pcall(t.await, t) end)()
    end)
    assert.is_false(ok)
    assert.truthy(err:find("can only be awaited from a task of its scheduler", 1, true))
  end)

  it("refuses spawn outside a scheduler and run inside one", function()
    assert.has_error(function() async.spawn(function() end) end,
      "async.spawn must be called from a task (inside async.run)")
    local ok, err = async.run(function()
      return pcall(async.run, function() end)
    end)
    assert.is_false(ok)
    assert.truthy(err:find("cannot be called while a scheduler runs", 1, true))
  end)

  it("refuses a task that is not a function and a negative timeout", function()
    assert.has_error(function() async.run(42) end,
      "bad argument #1 to 'run' (function expected, got number)")
    assert.has_error(function()
      async.run(function() threading.sleep(-1) end)
    end, "bad argument #1 to 'sleep' (timeout must be a non-negative number)")
    local ok, err = async.run(function()
      local t = async.spawn(function() end)
      return pcall(t.await, t, -1)
    end)
    assert.is_false(ok)
    assert.truthy(err:find("timeout must be a non-negative number", 1, true))
  end)
end)

describe("async.to_thread", function()
  it("returns the function's results, called outside a task", function()
    local sum, x = async.to_thread(function(a, b) return a + b, "x" end, 1, 2)
    assert.equal(3, sum)
    assert.equal("x", x)
  end)

  it("runs the function in another OS thread", function()
    local here = threading.get_ident()
    local there = async.to_thread(function() return require("threading").get_ident() end)
    assert.is_number(there)
    assert.are_not.equal(here, there)
  end)

  it("suspends only the calling task while the function runs", function()
    local go = threading.Event()
    local seen = async.run(function()
      local waiter = async.spawn(async.to_thread, function(e) return e:wait(10) end, go)
      -- runs only if to_thread left the scheduler free
      async.spawn(function() go:set() end)
      local ok, set = waiter:await()
      return ok and set
    end)
    assert.is_true(seen)
  end)

  it("runs the calls of several tasks at once", function()
    local b = threading.Barrier(4)
    local passed = async.run(function()
      local tasks = {}
      for i = 1, 4 do
        tasks[i] = async.spawn(async.to_thread, function(bb)
          return bb:wait(10) ~= nil
        end, b)
      end
      local n = 0
      for i = 1, 4 do
        local ok, through = tasks[i]:await()
        if ok and through then n = n + 1 end
      end
      return n
    end)
    assert.equal(4, passed)
  end)

  it("raises the function's error", function()
    local ok, err = pcall(async.to_thread, function() error("worker failed", 0) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("worker failed", 1, true), err)
  end)

  it("raises the function's error in the calling task", function()
    local ok, err = async.run(function()
      return async.pcall(async.to_thread, function() error("worker failed", 0) end)
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("worker failed", 1, true), err)
  end)

  it("stops waiting when its task is cancelled, and the function still runs to its end", function()
    local started, release, finished = threading.Event(), threading.Event(), threading.Event()
    local ok, err = async.run(function()
      local t = async.spawn(async.to_thread, function(s, r, f)
        s:set()
        r:wait(10)
        f:set()
      end, started, release, finished)
      started:wait(10)
      t:cancel()
      local tok, terr = t:await(10)
      release:set()
      return tok, terr
    end)
    assert.is_false(ok)
    assert.equal("cancelled", err)
    assert.is_true(finished:wait(10))
  end)

  it("copies tables to the worker and back", function()
    local r = async.to_thread(function(t) return { sum = t[1] + t[2], t = t } end, { 20, 22 })
    assert.equal(42, r.sum)
    assert.same({ 20, 22 }, r.t)
  end)

  it("refuses what is not callable with a standard error", function()
    assert.has_error(function() async.to_thread(42) end,
      "bad argument #1 to 'to_thread' (function expected, got number)")
  end)

  it("refuses a value that cannot move to the worker, naming where it was", function()
    local ok, err = pcall(async.to_thread, function() end, coroutine.create(function() end))
    assert.is_false(ok)
    assert.equal("cannot transfer value at args[1]: coroutine", err)
  end)
end)

describe("Barrier:wait in tasks", function()
  it("lets two tasks of one scheduler meet at a Barrier(2) (it blocked the scheduler's"
     .. " thread: a deadlock)", function()
    local a, b = async.run(function()
      local bar = threading.Barrier(2)
      local t1 = async.spawn(function() return bar:wait(10) end)
      local t2 = async.spawn(function() return bar:wait(10) end)
      local _, i1 = t1:await()
      local _, i2 = t2:await()
      return i1, i2
    end)
    assert.same({ 1, 2 }, { math.min(a, b), math.max(a, b) })
  end)

  it("lets tasks and threads meet at the same barrier", function()
    local indices = async.run(function()
      local bar = threading.Barrier(3)
      local th = threading.start(function(x) return x:wait(10) end, bar)
      local task = async.spawn(function() return bar:wait(10) end)
      local mine = bar:wait(10)
      local _, from_task = task:await()
      local _, from_thread = th:await(10)
      local got = { mine, from_task, from_thread }
      table.sort(got)
      return got
    end)
    assert.same({ 1, 2, 3 }, indices)
  end)

  it("breaks the barrier when a task's wait times out", function()
    local r, why, broken = async.run(function()
      local bar = threading.Barrier(2)
      local x, y = bar:wait(0.05)
      return x, y, bar.broken
    end)
    assert.is_nil(r)
    assert.equal("broken", why)
    assert.is_true(broken)
  end)

  it("breaks the barrier for the other waiters when a waiting task is cancelled", function()
    local other = async.run(function()
      local bar = threading.Barrier(3)
      local waiting = async.spawn(function() return bar:wait(10) end)
      local victim = async.spawn(function() return bar:wait(10) end)
      async.sleep(0)            -- both arrive and wait
      victim:cancel()
      local _, r, why = waiting:await(10)
      return { r, why, bar.broken }
    end)
    assert.same({ nil, "broken", true }, other)
  end)

  it("runs the action once, in the last task to arrive", function()
    local n = threading.Value(0)
    local r = async.run(function()
      local bar = threading.Barrier(2, function() n:add(1) end)
      local t1 = async.spawn(function() return bar:wait(10) end)
      local mine = bar:wait(10)
      local _, other = t1:await()
      return mine + other
    end)
    assert.equal(3, r)
    assert.equal(1, n:get())
  end)

  it("suspends only the waiting task: another task runs meanwhile", function()
    local order = async.run(function()
      local bar, seen = threading.Barrier(2), {}
      local t = async.spawn(function()
        bar:wait(10)
        seen[#seen + 1] = "passed"
      end)
      async.spawn(function()
        seen[#seen + 1] = "ran"
        bar:wait(10)
      end)
      t:await(10)
      return seen
    end)
    assert.same({ "ran", "passed" }, order)
  end)
end)

describe("the scheduler's watches", function()
  it("arms a task's watch again when a change woke it but another task took the item", function()
    local got = async.run(function()
      local q, results = threading.Queue(), {}
      local function take()
        local v = q:get(10)
        results[#results + 1] = v
      end
      local a, b = async.spawn(take), async.spawn(take)
      async.sleep(0)              -- both wait on the empty queue
      local feeder = threading.start(function(qq)
        qq:put(1)
        qq:put(2)
      end, q)
      a:await(10)
      b:await(10)
      feeder:await(10)
      table.sort(results)
      return results
    end)
    assert.same({ 1, 2 }, got)
  end)

  it("wakes each of many tasks on its own object, in the order they are released", function()
    local order = async.run(function()
      local events, seen, tasks = {}, {}, {}
      for i = 1, 200 do
        events[i] = threading.Event()
        tasks[i] = async.spawn(function(e, n)
          e:wait(10)
          seen[#seen + 1] = n
        end, events[i], i)
      end
      async.sleep(0)
      local setter = threading.start(function(evs)
        for i = #evs, 1, -1 do evs[i]:set() end
      end, events)
      for i = 1, 200 do tasks[i]:await(10) end
      setter:await(10)
      return seen
    end)
    assert.equal(200, #order)
    local all = {}
    for _, n in ipairs(order) do all[n] = true end
    for i = 1, 200 do assert.is_true(all[i]) end
  end)

  it("gives an ended task's token to the next task, and wakes each one right", function()
    local n = async.run(function()
      local q, acks = threading.Queue(), threading.Queue()
      local feeder = threading.start(function(qq, aa)
        for i = 1, 2000 do qq:put(i) assert(aa:get(10) == i) end
      end, q, acks)
      local count = 0
      for i = 1, 2000 do
        -- one task at a time: each reuses the token of the one before
        local t = async.spawn(function() return q:get(10) end)
        local _, v = t:await(10)
        if v == i then count = count + 1 end
        acks:put(i)
      end
      feeder:await(10)
      return count
    end)
    assert.equal(2000, n)
  end)

  -- async._polls() counts the retries of blocked tasks' calls: a change
  -- that lets one task proceed must not make every waiting task retry.
  -- Two rounds of the scheduler: the tasks spawned run to their waits,
  -- then it makes their last tries; so the count starts with all parked.
  local function settle()
    async.sleep(0)
    async.sleep(0)
  end
  -- In a task: `rounds` round trips with a thread on two queues of their
  -- own; returns how many retries of blocked calls the scheduler made.
  local function unrelated_round_trips(rounds)
    local qa, qb = threading.Queue(), threading.Queue()
    local before = async._polls()
    local t = threading.start(function(a, b, n)
      for i = 1, n do
        a:put(i)
        assert(b:get(10))
      end
    end, qa, qb, rounds)
    for _ = 1, rounds do
      qa:get(10)
      qb:put(true)
    end
    t:await(30)
    return async._polls() - before
  end
  it("does not retry threading.wait and select on changes of other objects (bug: every change)", function()
    local rounds, polls = 100, nil
    async.run(function()
      local f, idle = threading.Future(), threading.Queue()
      local waiters = {}
      for i = 1, 20 do
        waiters[i] = async.spawn(function() return threading.wait({ f }, 30) end)
        waiters[20 + i] = async.spawn(function() return threading.select({ idle, f }, 30) end)
      end
      settle()
      -- round trips with a thread on queues none of the 40 waits on
      polls = unrelated_round_trips(rounds)
      f:set_result("done")
      for i = 1, 40 do
        assert(waiters[i]:await(30))
      end
    end)
    -- the main task's own gets take about two retries each; each waiter
    -- retried on every change would add 40 per round trip
    assert.is_true(polls <= 3 * rounds, "retries: " .. tostring(polls))
  end)

  it("does not retry Pool:shutdown's wait on changes of other objects (bug: every change)", function()
    local rounds, polls = 100, nil
    local pool = threading.Pool(1)
    local gate = threading.Event()
    local job = pool:submit(function(e) return e:wait(30) end, gate)
    async.run(function()
      local closers = {}
      for i = 1, 20 do
        closers[i] = async.spawn(function() pool:shutdown() return true end)
      end
      settle()
      polls = unrelated_round_trips(rounds)
      gate:set()
      for i = 1, 20 do
        assert(closers[i]:await(30))
      end
    end)
    assert.is_true(job:result(10))
    assert.equal(0, pool.workers)
    -- 20 waits retried on every change would add 80 per round trip
    assert.is_true(polls <= 3 * rounds, "retries: " .. tostring(polls))
  end)

  it("wakes a task in threading.wait when one of its futures is done", function()
    local got = async.run(function()
      local a, b = threading.Future(), threading.Future()
      local w = async.spawn(function()
        local done = threading.wait({ a, b }, 30, "first_completed")
        return #done
      end)
      settle()
      threading.start(function(x) x:set_result(1) end, b):await(10)
      return select(2, w:await(30))
    end)
    assert.equal(1, got)
  end)

  it("wakes a task in select when a thread puts on one of its queues", function()
    local got = async.run(function()
      local q1, q2 = threading.Queue(), threading.Queue()
      local w = async.spawn(function()
        return { threading.select({ q1, q2 }, 30) }
      end)
      settle()
      threading.start(function(q) q:put("x") end, q2):await(10)
      return select(2, w:await(30))
    end)
    assert.same({ 2, "x" }, got)
  end)

  it("wakes one task per item put on a queue that many tasks wait on (each put woke them all)", function()
    local n, polls = 200, nil
    local got = async.run(function()
      local q, acks = threading.Queue(), threading.Queue()
      for _ = 1, n do
        async.spawn(function() acks:put(q:get(10)) end)
      end
      settle()
      local before = async._polls()
      local feeder = threading.start(function(qq, aa, count)
        local sum = 0
        for i = 1, count do qq:put(i) sum = sum + aa:get(10) end
        return sum
      end, q, acks, n)
      local _, sum = feeder:await(30)
      polls = async._polls() - before
      return sum
    end)
    assert.equal(n * (n + 1) / 2, got)
    assert.is_true(polls <= 3 * n, "retries: " .. tostring(polls))
  end)

  it("wakes one task per slot freed in a full queue that many tasks put to", function()
    local n, polls = 100, nil
    local sum = async.run(function()
      local q, acks = threading.Queue(1), threading.Queue()
      q:put(0)
      for i = 1, n do
        async.spawn(function() q:put(i, 10) acks:put(i) end)
      end
      settle()
      local before = async._polls()
      -- one slot at a time: each get waits for the put it let in
      local drain = threading.start(function(qq, aa, count)
        local s = 0
        for k = 1, count + 1 do
          s = s + qq:get(10)
          if k <= count then aa:get(10) end
        end
        return s
      end, q, acks, n)
      local _, s = drain:await(30)
      polls = async._polls() - before
      return s
    end)
    assert.equal(n * (n + 1) / 2, sum)
    assert.is_true(polls <= 3 * n, "retries: " .. tostring(polls))
  end)

  it("wakes one task per release of a Lock that many tasks wait for", function()
    local n, polls = 100, nil
    local count = async.run(function()
      local lock, done, total = threading.Lock(), threading.Queue(), 0
      lock:acquire()
      for _ = 1, n do
        async.spawn(function()
          lock:acquire()
          total = total + 1
          lock:release()
          done:put(1)
        end)
      end
      settle()
      local before = async._polls()
      lock:release()
      for _ = 1, n do done:get(10) end
      polls = async._polls() - before
      return total
    end)
    assert.equal(n, count)
    assert.is_true(polls <= 4 * n, "retries: " .. tostring(polls))
  end)

  it("wakes as many tasks as Semaphore:release(n) frees units for", function()
    local polls
    local r = async.run(function()
      local sem, done = threading.Semaphore(0), threading.Queue()
      for i = 1, 100 do
        async.spawn(function() sem:acquire(10) done:put(i) end)
      end
      settle()
      local before = async._polls()
      sem:release(3)
      local got = { done:get(10), done:get(10), done:get(10) }
      polls = async._polls() - before
      local left = done:get(0.05)
      sem:release(97)
      for _ = 1, 97 do done:get(10) end
      table.sort(got)
      return { got, left }
    end)
    assert.same({ { 1, 2, 3 }, nil }, { r[1], r[2] })
    assert.is_true(polls <= 12, "retries: " .. tostring(polls))
  end)

  it("wakes only the task that Condition:notify(1) picks of many waiting (it woke every one)", function()
    local polls
    local r = async.run(function()
      local cond, woke = threading.Condition(), threading.Queue()
      for i = 1, 100 do
        async.spawn(function()
          cond:acquire()
          cond:wait(10)
          cond:release()
          woke:put(i)
        end)
      end
      settle()
      local before = async._polls()
      cond:acquire()
      cond:notify(1)
      cond:release()
      local first = woke:get(10)
      polls = async._polls() - before
      cond:acquire()
      cond:notify_all()
      cond:release()
      for _ = 1, 99 do woke:get(10) end
      return first
    end)
    assert.equal(1, r)
    assert.is_true(polls <= 6, "retries: " .. tostring(polls))
  end)

  it("passes an item's wake-up on when the task it woke is cancelled before it ran", function()
    local r = async.run(function()
      local q = threading.Queue()
      local a = async.spawn(function() return q:get(10) end)
      local b = async.spawn(function() return q:get(10) end)
      settle()              -- both wait; a, the older, is woken first
      q:put("x")
      a:cancel()
      local _, v = b:await(5)
      return { a:cancelled(), v }
    end)
    assert.same({ true, "x" }, r)
  end)

  it("times out a task whose wake-up another task took", function()
    local r = async.run(function()
      local q = threading.Queue()
      local short = async.spawn(function() return { q:get(true, 0.2) } end)
      local long = async.spawn(function() return { q:get(true, 10) } end)
      settle()               -- both wait; short, the older, is woken first
      q:put("x")
      assert.equal("x", q:get(false)) -- taken back before short runs
      async.sleep(0)         -- short wakes, finds nothing, waits on
      local ok, got = short:await(5)
      if not ok then         -- it would wait forever: let run return
        short:cancel()
        long:cancel()
        return { "short never timed out" }
      end
      long:cancel()
      return got
    end)
    assert.same({ nil, "empty" }, r)
  end)

  it("runs a task that a change woke before one that yielded meanwhile (as asyncio)", function()
    local log = async.run(function()
      local q, log = threading.Queue(), {}
      local reader = async.spawn(function()
        local item = q:get(10)
        log[#log + 1] = "got " .. item
      end)
      settle()
      q:put("a")
      async.sleep(0)
      log[#log + 1] = "main"
      reader:await(10)
      return log
    end)
    assert.same({ "got a", "main" }, log)
  end)

  it("wakes tasks that wait on many futures at once (threading.wait) as each completes", function()
    local pool = new_pool(2)
    local done = async.run(function()
      local gates, futs = {}, {}
      for i = 1, 3 do
        gates[i] = threading.Event()
        futs[i] = pool:submit(function(g, n) g:wait(10) return n end, gates[i], i)
      end
      local waiter = async.spawn(function()
        local d = threading.wait(futs, 10, "first_completed")
        return #d
      end)
      async.sleep(0)
      gates[2]:set()
      local _, n = waiter:await(10)
      gates[1]:set()
      gates[3]:set()
      return n
    end)
    assert.equal(1, done)
  end)
end)

-- Lua 5.2+ (not LuaJIT, which reports 5.1): lua_callk lets a C method
-- suspend the task that called it, so no method needs a wrapper there.
local native = _VERSION ~= "Lua 5.1"

describe("the task wrappers of blocking methods", function()
  local sethook, getinfo = debug.sethook, debug.getinfo
  -- the wrappers exist on Lua 5.1 and LuaJIT only
  local function wrapped_it(name, fn)
    if not native then it(name, fn) else pending(name .. " (Lua 5.1 and LuaJIT only)") end
  end

  -- How many functions of the module's Lua files run while fn does (a
  -- method lookup that asks async's __index runs one).
  local function module_calls(fn)
    local n = 0
    sethook(function()
      local info = getinfo(2, "S")
      if info and info.what == "Lua" and info.short_src:find("threading/", 1, true) then
        n = n + 1
      end
    end, "c")
    fn()
    sethook()
    return n
  end

  local function lookups()
    local lock, q, ev = threading.Lock(), threading.Queue(), threading.Event()
    return module_calls(function()
      local _, _, _, _, _ = lock.acquire, lock.release, q.get, q.put, ev.wait
    end)
  end

  it("cost a lookup outside a scheduler no Lua call in a state that loaded the module", function()
    assert.equal(0, lookups())
  end)

  it("cost a lookup no Lua call again once async.run has returned", function()
    async.run(function() async.sleep(0) end)
    assert.equal(0, lookups())
  end)

  it("cost a lookup no Lua call again once async.run has raised", function()
    pcall(async.run, function() error("boom", 0) end)
    assert.equal(0, lookups())
  end)

  it("cost a lookup no Lua call again after a step of a stepped scheduler", function()
    local s = async.scheduler()
    s:spawn(function() async.sleep(0) end)
    s:step()
    s:close()
    assert.equal(0, lookups())
  end)

  wrapped_it("stay in place between the steps of a stepped scheduler until it is closed", function()
    local q = threading.Queue()
    local s = async.scheduler()
    s:spawn(function() async.sleep(0) end)
    s:step() -- from the first step on, a step swaps no method
    local between = q.iter
    s:close()
    assert.equal("Lua", getinfo(between, "S").what)
    assert.equal("C", getinfo(q.iter, "S").what)
  end)

  wrapped_it("stay in place for a task that closed its own stepped scheduler until the step ends", function()
    local q = threading.Queue()
    local s = async.scheduler()
    local during
    s:spawn(function()
      s:close()
      during = q.iter
    end)
    s:step()
    assert.equal("Lua", getinfo(during, "S").what)
    assert.equal("C", getinfo(q.iter, "S").what)
  end)

  wrapped_it("give a task the wrapper, and a thread the C method, of the same method", function()
    local q = threading.Queue()
    local in_task = async.run(function() return q.iter end)
    assert.equal("Lua", getinfo(in_task, "S").what)
    assert.equal("C", getinfo(q.iter, "S").what)
  end)

  it("leave a method that the program set in a type's methods as it set it", function()
    local methods = debug.getregistry()["threading.Event"].methods
    local c_wait = rawget(methods, "wait")
    local function mine() return "mine" end
    rawset(methods, "wait", mine)
    local ev = threading.Event()
    local in_task = async.run(function() return ev:wait(0) end)
    local after = rawget(methods, "wait")
    rawset(methods, "wait", c_wait)
    assert.equal("mine", in_task)
    assert.equal(mine, after)
  end)

  it("raise the error a thread gets for bad arguments in a task", function()
    local lock, sem = threading.Lock(), threading.Semaphore(1)
    local q, ev = threading.Queue(), threading.Event()
    local fut, cond, barrier = threading.Future(), threading.Condition(), threading.Barrier(2)
    local thread = threading.start(function() end)
    thread:join()
    -- no tail calls: LuaJIT cannot name the function of one in its errors
    local calls = {
      function() local _ = lock:acquire("x") end,
      function() local _ = lock:acquire(false, 1) end,
      function() local _ = sem:acquire(false, 1) end,
      function() local _ = q:get(true, -1) end,
      function() local _ = q:put(1, true, "x") end,
      function() local _ = ev:wait(-1) end,
      function() local _ = q:join(-1) end,
      function() local _ = fut:result("x") end,
      function() local _ = fut:exception(-1) end,
      function() local _ = thread:join(-1) end,
      function() local _ = cond:wait() end,
      function() local _ = cond:wait_for(42) end,
      function() local _ = barrier:wait(-1) end,
    }
    -- the message without its "file:line: " (a C method adds none)
    local function message(f)
      local ok, err = pcall(f)
      assert.is_false(ok)
      return (tostring(err):gsub("^[^:]*:%d+: ", ""))
    end
    local in_thread, in_task = {}, {}
    for i, f in ipairs(calls) do
      in_thread[i] = message(f)
    end
    async.run(function()
      for i, f in ipairs(calls) do
        in_task[i] = message(f)
      end
    end)
    assert.same(in_thread, in_task)
    assert.matches("^bad argument #1 to 'acquire'", in_task[1])
  end)

  it("call the C method for a coroutine that a task made", function()
    local q = threading.Queue()
    q:put("item")
    local _, c_err = pcall(function() local _ = q:get(true, -1) end)
    local got, err = async.run(function()
      return coroutine.wrap(function()
        local item = q:get()
        local _, e = pcall(function() local _ = q:get(true, -1) end)
        return item, e
      end)()
    end)
    assert.equal("item", got)
    assert.equal((c_err:gsub("^[^:]*:%d+: ", "")), (err:gsub("^[^:]*:%d+: ", "")))
  end)

  wrapped_it("keep a wrapper looked up in a task working outside the scheduler", function()
    local q = threading.Queue()
    local iter = async.run(function() return q.iter end)
    q:put("item")
    assert.equal("item", iter(q, 1)())
    local ok, err = pcall(iter, q, -1)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'iter' %(timeout must be a non%-negative number%)", err)
  end)
end)

describe("the C methods that suspend a task themselves (Lua 5.2+)", function()
  local getinfo = debug.getinfo
  local function native_it(name, fn)
    if native then it(name, fn) else pending(name .. " (Lua 5.2+ only)") end
  end

  -- what list() gives in a task is what it gives outside, C functions all
  local function assert_c_in_task(list)
    local outside = list()
    local inside = async.run(list)
    assert.same(outside, inside)
    for i = 1, #inside do
      assert.equal("C", getinfo(inside[i], "S").what)
    end
  end

  native_it("stand in a task as outside: acquire, get, put and Event:wait", function()
    local lock, q, sq, ev = threading.Lock(), threading.Queue(), threading.SimpleQueue(),
      threading.Event()
    assert_c_in_task(function()
      return { lock.acquire, q.get, q.put, sq.get, ev.wait }
    end)
  end)

  native_it("stand in a task as outside: the other waits (queue, Condition, Barrier, Future...)", function()
    local fut, q, c = threading.Future(), threading.Queue(), threading.Condition()
    local t, b = threading.Thread(function() end), threading.Barrier(2)
    local pool = threading.Pool(1)
    assert_c_in_task(function()
      return { fut.result, fut.exception, fut.await, t.join, t.await, q.join,
        q.iter, c.wait, c.wait_for, b.wait, pool.shutdown }
    end)
    pool:shutdown()
  end)

  native_it("stand in a task as outside: threading.select, wait and sleep", function()
    assert_c_in_task(function()
      return { threading.select, threading.wait, threading.sleep }
    end)
  end)

  native_it("let the other tasks run while one sleeps in threading.sleep", function()
    local log = {}
    async.run(function()
      local sleeper = async.spawn(function()
        threading.sleep(0.05)
        log[#log + 1] = "slept"
      end)
      async.spawn(function() log[#log + 1] = "ran" end):await(10)
      sleeper:await(10)
    end)
    assert.same({ "ran", "slept" }, log)
  end)

  -- The log of a task that logs "wait", then the text that wait() gives,
  -- while the main task logs "set" and completes fut once the task waits.
  local function wait_then_set(fut, wait)
    local log = {}
    async.run(function()
      local waiter = async.spawn(function()
        log[#log + 1] = "wait"
        local text = wait()
        log[#log + 1] = text
      end)
      async.sleep(0) -- it waits now; had it blocked the thread, nothing would run
      log[#log + 1] = "set"
      fut:set_result("v")
      waiter:await(10)
    end)
    return log
  end

  native_it("suspend a task that calls Future:result taken into a local before run", function()
    local fut = threading.Future()
    local result = fut.result
    assert.same({ "wait", "set", "true v" }, wait_then_set(fut, function()
      local ok, v = result(fut, 10)
      return tostring(ok) .. " " .. tostring(v)
    end))
  end)

  native_it("let two tasks meet at a Barrier through its wait taken into a local before run", function()
    local b = threading.Barrier(2)
    local wait = b.wait
    local got = async.run(function()
      -- had the first blocked the thread, it would time out and break the barrier
      local first = async.spawn(function() return wait(b, 10) end)
      local second = async.spawn(function() return wait(b, 10) end)
      local _, i = first:await(20)
      local _, j = second:await(20)
      return { i, j }
    end)
    table.sort(got)
    assert.same({ 1, 2 }, got)
  end)

  for _, kind in ipairs({ "Queue", "LifoQueue" }) do
    native_it("suspend a task that iterates a " .. kind .. " with an iterator made before run", function()
      local q = threading[kind]()
      local items = q:iter(10)
      local log = {}
      async.run(function()
        local reader = async.spawn(function()
          log[#log + 1] = "iterate"
          for item in items do
            log[#log + 1] = item
          end
        end)
        async.sleep(0) -- it waits now; had it blocked the thread, nothing would run
        log[#log + 1] = "put"
        q:put("a")
        async.sleep(0) -- the reader takes it
        q:put("b")
        q:shutdown()
        reader:await(10)
      end)
      assert.same({ "iterate", "put", "a", "b" }, log)
    end)
  end

  native_it("suspend a task in as_completed's step, its completion set's own next", function()
    local fut = threading.Future()
    local set = threading._completions({ fut })
    assert.same({ "wait", "set", "1" }, wait_then_set(fut, function()
      return tostring(set:next(5))
    end))
  end)

  native_it("suspend a task that calls a method taken into a local before run", function()
    local q, lock = threading.Queue(), threading.Lock()
    local get, acquire = q.get, lock.acquire
    local log = {}
    async.run(function()
      local getter = async.spawn(function()
        log[#log + 1] = "get"
        local item = get(q, true, 10)
        log[#log + 1] = item
      end)
      lock:acquire()
      local taker = async.spawn(function()
        log[#log + 1] = "acquire"
        local took = acquire(lock, true, 10)
        log[#log + 1] = tostring(took)
      end)
      async.sleep(0) -- both wait now; had one blocked the thread, nothing would run
      log[#log + 1] = "put"
      q:put("item")
      lock:release()
      getter:await(10)
      taker:await(10)
    end)
    assert.same({ "get", "acquire", "put", "item", "true" }, log)
  end)

  native_it("suspend a task whose call comes through a pcall", function()
    local q = threading.Queue()
    local got = async.run(function()
      local getter = async.spawn(function()
        return pcall(q.get, q, true, 10)
      end)
      async.sleep(0)
      q:put("item")
      local _, ok, item = getter:await(10)
      return ok and item
    end)
    assert.equal("item", got)
  end)
end)
