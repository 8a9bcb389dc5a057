local threading = require("threading")
local helpers = require("helpers")

-- A pool that is shut down (and its workers joined) when the `it` ends.
local function new_pool(...)
  local pool = threading.Pool(...)
  finally(function()
    pool:shutdown(false, true)
    pool:shutdown()
  end)
  return pool
end

-- A function whose globals are those of the state it runs in (spec files
-- run in an environment of their own, which a transfer would copy).
local function global_fn(source)
  return assert((loadstring or load)(source))
end

-- A task that blocks its worker until `go` is set; `started` says it runs.
local function blocker(started, go)
  started:set()
  assert(go:wait(10), "blocker was never released")
  return "released"
end

describe("Pool", function()
  it("runs a submitted function with its arguments and returns its results", function()
    local pool = new_pool(2)
    local f = pool:submit(function(a, b) return a + b, "sum" end, 40, 2)
    assert.same({ true, 42, "sum" }, { f:result(10) })
  end)

  it("keeps nils among the arguments and results", function()
    local pool = new_pool(1)
    local f = pool:submit(function(...) return select("#", ...), ... end, nil, 2, nil)
    local r = { n = select("#", f:result(10)), f:result(10) }
    assert.equal(5, r.n)
    assert.same({ n = 5, true, 3, nil, 2, nil }, r)
  end)

  it("returns false and the error with a traceback when a task fails", function()
    local pool = new_pool(1)
    local ok, err = pool:submit(function() error("boom") end):result(10)
    assert.is_false(ok)
    assert.truthy(err:find("boom", 1, true))
    assert.truthy(err:find("stack traceback", 1, true))
  end)

  it("passes non-string errors back as values", function()
    local pool = new_pool(1)
    local ok, err = pool:submit(function() error({ code = 7 }) end):result(10)
    assert.is_false(ok)
    assert.same({ code = 7 }, err)
  end)

  it("keeps a worker serving after one of its tasks failed", function()
    local pool = new_pool(1)
    local where = function() return require("threading").current_thread().name end
    local ok1 = pool:submit(function() error("first fails") end):result(10)
    local ok2, name = pool:submit(where):result(10)
    assert.is_false(ok1)
    assert.is_true(ok2)
    assert.equal(pool.name .. "_0", name)
    assert.equal(1, pool.workers)
  end)

  it("keeps a worker's state between tasks", function()
    local pool = new_pool(1)
    local bump = global_fn("counter = (counter or 0) + 1 return counter")
    for i = 1, 3 do
      assert.same({ true, i }, { pool:submit(bump):result(10) })
    end
  end)

  it("runs the initializer once in each worker with its initargs", function()
    local pool = new_pool(1, {
      initializer = global_fn("local a, b = ... initialized = (initialized or 0) + a + b"),
      initargs = { 1, 2 },
    })
    for _ = 1, 3 do
      assert.same({ true, 3 }, { pool:submit(global_fn("return initialized")):result(10) })
    end
  end)

  it("breaks when its initializer fails: tasks fail and submit raises", function()
    local pool = new_pool(1, { initializer = function() error("no setup") end })
    local ok, err = pool:submit(function() return 1 end):result(10)
    assert.is_false(ok)
    assert.truthy(err:find("broken", 1, true))
    assert.truthy(err:find("no setup", 1, true))
    assert.has_error(function() pool:submit(function() end) end,
      "cannot submit to a broken pool (its initializer failed)")
  end)

  it("names its workers after opts.name", function()
    local pool = new_pool(1, { name = "crunch" })
    assert.equal("crunch", pool.name)
    local ok, name = pool:submit(function() return require("threading").current_thread().name end):result(10)
    assert.is_true(ok)
    assert.equal("crunch_0", name)
  end)

  it("accepts its options as the only argument", function()
    local pool = new_pool({ workers = 3, name = "opts" })
    assert.equal(3, pool.max_workers)
    assert.equal("opts", pool.name)
  end)

  it("defaults to min(32, cpu_count() + 4) workers, as Python's executor (was the CPU count)", function()
    local pool = new_pool()
    assert.equal(math.min(32, threading.cpu_count() + 4), pool.max_workers)
  end)

  it("refuses a misspelled option (unknown options were silently ignored)", function()
    assert.has_error(function() threading.Pool{ workers = 1, nmae = "x" } end,
      "bad argument #1 to 'Pool' (unknown option 'nmae')")
    assert.has_error(function() threading.Pool(1, { worker = 2 }) end,
      "bad argument #2 to 'Pool' (unknown option 'worker')")
  end)

  it("starts its workers only when tasks need them", function()
    local pool = new_pool(4)
    assert.equal(0, pool.workers)
    pool:submit(function() end):result(10)
    assert.is_true(pool.workers >= 1 and pool.workers <= 4)
  end)

  it("runs tasks in parallel up to its size", function()
    local pool = new_pool(2)
    local a, b = threading.Event(), threading.Event()
    -- each task waits for the other's event: they finish only side by side
    local fa = pool:submit(function(mine, other) mine:set() return other:wait(10) end, a, b)
    local fb = pool:submit(function(mine, other) mine:set() return other:wait(10) end, b, a)
    assert.same({ true, true }, { fa:result(10) })
    assert.same({ true, true }, { fb:result(10) })
  end)

  it("runs thousands of tasks", function()
    local pool = new_pool(2)
    local futures = {}
    for i = 1, 5000 do
      futures[i] = pool:submit(function(x) return x * 2 end, i)
    end
    local sum = 0
    for i = 1, 5000 do
      local ok, v = futures[i]:result(30)
      assert.is_true(ok)
      sum = sum + v
    end
    assert.equal(5000 * 5001, sum)
  end)

  it("can be used from another thread", function()
    local pool = new_pool(2)
    local t = threading.start(function(p)
      return select(2, p:submit(function() return "from a thread" end):result(10))
    end, pool)
    assert.same({ true, "from a thread" }, { t:join(10) })
  end)

  it("refuses a task that is not a function", function()
    local pool = new_pool(1)
    assert.has_error(function() pool:submit(42) end,
      "bad argument #1 to 'submit' (function expected, got number)")
  end)

  it("refuses an argument that cannot move, names it, and queues nothing", function()
    local pool = new_pool(1)
    local count = threading.Value(0)
    local co = coroutine.create(function() end)
    assert.has_error(function()
      pool:submit(function(c) c:add(1) end, count, { conn = co })
    end, "cannot transfer value at args[2].conn: coroutine")
    pool:submit(function(c) c:add(1) end, count)
    pool:shutdown()
    assert.equal(1, count:get())
  end)

  it("refuses a task submitted after shutdown", function()
    local pool = new_pool(1)
    pool:shutdown()
    assert.has_error(function() pool:submit(function() end) end,
      "cannot submit to a pool that was shut down")
  end)

  it("rejects a bad number of workers", function()
    for _, bad in ipairs({ 0, -1, 1.5, "many" }) do
      assert.has_error(function() threading.Pool(bad) end,
        "bad argument #1 to 'Pool' (number of workers must be a positive integer)")
    end
  end)

  it("rejects bad options", function()
    assert.has_error(function() threading.Pool(1, { initializer = 3 }) end,
      "bad argument #2 to 'Pool' (field 'initializer' must be a function)")
    assert.has_error(function() threading.Pool(1, { name = {} }) end,
      "bad argument #2 to 'Pool' (field 'name' must be a string)")
    assert.has_error(function() threading.Pool(1, { initargs = 1 }) end,
      "bad argument #2 to 'Pool' (field 'initargs' must be a table)")
  end)

  it("refuses an initargs.n beyond what a stack takes, without overflowing"
     .. " (signed overflow in lua_checkstack)", function()
    for _, n in ipairs({ 2 ^ 31 - 1, 2 ^ 40, 1e300 }) do
      assert.has_error(function() threading.Pool(1, { initargs = { n = n } }) end,
        "bad argument #2 to 'Pool' (field 'initargs' has too many values)")
    end
  end)

  it("waits in shutdown for the queued tasks to finish", function()
    local pool = threading.Pool(1)
    local futures = {}
    for i = 1, 20 do
      futures[i] = pool:submit(function(x) return x end, i)
    end
    pool:shutdown()
    for i = 1, 20 do
      assert.is_true(futures[i]:done())
    end
    assert.equal(0, pool.workers)
  end)

  it("returns from shutdown(false) at once and still runs the queued tasks", function()
    local pool = threading.Pool(1)
    local started, go = threading.Event(), threading.Event()
    local first = pool:submit(blocker, started, go)
    local second = pool:submit(function() return "second" end)
    assert.is_true(started:wait(10))
    pool:shutdown(false)
    assert.is_false(second:done())
    go:set()
    assert.same({ true, "second" }, { second:result(10) })
    assert.same({ true, "released" }, { first:result(10) })
    pool:shutdown()
  end)

  it("cancels the pending futures with shutdown(wait, true)", function()
    local pool = threading.Pool(1)
    local started, go = threading.Event(), threading.Event()
    local running = pool:submit(blocker, started, go)
    assert.is_true(started:wait(10))
    local pending = {}
    for i = 1, 5 do
      pending[i] = pool:submit(function() return "ran" end)
    end
    pool:shutdown(false, true)
    for i = 1, 5 do
      assert.is_true(pending[i]:cancelled())
      assert.same({ false, "cancelled" }, { pending[i]:result(0) })
    end
    go:set()
    pool:shutdown()
    assert.same({ true, "released" }, { running:result(0) })
  end)

  it("refuses to wait for itself from one of its workers", function()
    local pool = new_pool(1)
    local ok, pcall_ok, err = pool:submit(function(p) return pcall(p.shutdown, p) end, pool):result(10)
    assert.is_true(ok)
    assert.is_false(pcall_ok)
    assert.truthy(err:find("cannot wait for a pool's workers from one of them", 1, true))
  end)

  it("ends a worker whose Thread is cancelled and starts another for the next task", function()
    local pool = new_pool(1, { name = "cw" })
    local started, go = threading.Event(), threading.Event()
    local f = pool:submit(blocker, started, go)
    assert.is_true(started:wait(10))
    local worker
    for _, t in ipairs(threading.enumerate()) do
      if t.name == "cw_0" then
        worker = t
      end
    end
    worker:cancel()
    assert.same({ false, "cancelled" }, { f:result(10) })
    assert.same({ false, "cancelled" }, { worker:join(10) })
    local ok, name = pool:submit(function() return require("threading").current_thread().name end):result(10)
    assert.is_true(ok)
    assert.equal("cw_1", name)
  end)

  it("lets its queued tasks finish and its workers leave once collected", function()
    local started, go = threading.Event(), threading.Event()
    local futures, workers = {}, {}
    do
      local pool = threading.Pool(1, { name = "collected" })
      futures[1] = pool:submit(blocker, started, go)
      futures[2] = pool:submit(function() return "queued" end)
      assert.is_true(started:wait(10))
      for _, t in ipairs(threading.enumerate()) do
        if t.name == "collected_0" then
          workers[#workers + 1] = t
        end
      end
      pool = nil -- luacheck: ignore
    end
    collectgarbage()
    collectgarbage()
    go:set()
    assert.same({ true, "queued" }, { futures[2]:result(10) })
    assert.equal(1, #workers)
    assert.is_true((workers[1]:join(10)))
  end)

  it("ends a worker cancelled before its target ran, and the pool goes on"
     .. " (cancelled worker wedged the pool)", function()
    local pool = new_pool(1, { name = "early" })
    local gate = threading.Lock()
    gate:acquire()
    -- the first worker, cancelled at once: it may end before it ever runs
    local first = pool:submit(function(g) g:acquire() g:release() return "first" end, gate)
    local queued = pool:submit(function() return "queued" end)
    for _, t in ipairs(threading.enumerate()) do
      if t.name == "early_0" then t:cancel() end
    end
    gate:release()
    local ok, err = first:result(10)
    assert.truthy(ok == true or err == "cancelled", tostring(err))
    assert.same({ true, "queued" }, { queued:result(10) })
    assert.same({ true, "next" }, { pool:submit(function() return "next" end):result(10) })
    pool:shutdown()
    assert.equal(0, pool.workers)
  end)

  it("fails the task a cancelled worker was running with 'cancelled', not as cancelled()", function()
    local pool = new_pool(1, { name = "cut" })
    local started = threading.Event()
    local f = pool:submit(function(ev)
      if jit then jit.off() end
      ev:set()
      while true do end
    end, started)
    assert.is_true(started:wait(10))
    for _, t in ipairs(threading.enumerate()) do
      if t.name == "cut_0" then t:cancel() end
    end
    assert.same({ false, "cancelled" }, { f:result(10) })
    assert.is_false(f:cancelled())
    assert.equal("cancelled", f:exception())
  end)

  it("starts a new worker for tasks queued behind a cancelled one", function()
    local pool = new_pool(1, { name = "behind" })
    local started, never = threading.Event(), threading.Event()
    local running = pool:submit(function(ev, no) ev:set() no:wait() end, started, never)
    local queued = pool:submit(function() return require("threading").current_thread().name end)
    assert.is_true(started:wait(10))
    for _, t in ipairs(threading.enumerate()) do
      if t.name == "behind_0" then t:cancel() end
    end
    assert.same({ false, "cancelled" }, { running:result(10) })
    assert.same({ true, "behind_1" }, { queued:result(10) })
  end)

  it("lets shutdown return after its worker was cancelled while idle", function()
    local pool = new_pool(1, { name = "idle" })
    assert.same({ true, 1 }, { pool:submit(function() return 1 end):result(10) })
    local worker
    for _, t in ipairs(threading.enumerate()) do
      if t.name == "idle_0" then worker = t end
    end
    worker:cancel()
    assert.same({ false, "cancelled" }, { worker:join(10) })
    local done = threading.start(function(p) p:shutdown() return "returned" end, pool)
    assert.same({ true, "returned" }, { done:join(10) })
  end)

  it("is shut down at exit even when a task keeps the pool in its worker"
     .. " (reference cycle hung exit)", function()
    local code, out, err = helpers.run_script([[
      local threading = require("threading")
      local pool = threading.Pool(2)
      for i = 1, 4 do
        pool:submit(function(p, n)
          keep_pool = p             -- a global of the worker's own state
          io.write(("task %d\n"):format(n))   -- one write: workers run at once
        end, pool, i)
      end
      io.write("script ends\n")
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    table.sort(lines)
    assert.same({ "script ends", "task 1", "task 2", "task 3", "task 4" }, lines)
  end)

  it("keeps a busy worker's memory flat on every Lua (5.4 never collected)", function()
    local pool = new_pool(1)
    -- a fresh closure for each task, bound to the real globals: each task
    -- is loaded anew in the worker, and allocates nothing else
    local make = global_fn("return function() return collectgarbage('count') end")
    local first, last
    for round = 1, 11 do
      local futures = {}
      for i = 1, 1000 do
        futures[i] = pool:submit(make())
      end
      for i = 1, 1000 do
        last = select(2, futures[i]:result(10))
      end
      if round == 1 then first = last end
    end
    -- 10,000 tasks after the first 1,000, of ~300 bytes each, would
    -- leave ~3 MiB uncollected
    assert.truthy(last < first + 2048, ("grew from %.0f to %.0f KiB"):format(first, last))
  end)

  it("lets a script that never shuts its pool down exit after its tasks", function()
    local code, out = helpers.run_script([[
      local threading = require("threading")
      local pool = threading.Pool(2)
      -- a task that holds the pool itself, in the worker's state
      pool:submit(function(p) io.write("task ran\n") return p end, pool)
    ]])
    assert.equal(0, code)
    assert.equal("task ran\n", out)
  end)

  it("shuts down when a <close> variable holding it goes out of scope", function()
    if _VERSION ~= "Lua 5.4" then
      return -- to-be-closed variables exist from Lua 5.4 on
    end
    local chunk = assert(load([[
      local threading = ...
      local f
      do
        local pool <close> = threading.Pool(1)
        f = pool:submit(function() return "closed" end)
      end
      return f:done(), f:result(0)
    ]]))
    assert.same({ true, true, "closed" }, { chunk(threading) })
  end)

  it("describes itself in tostring", function()
    local pool = new_pool(2, { name = "shown" })
    assert.truthy(tostring(pool):find("shown", 1, true))
  end)
end)

describe("Pool:map", function()
  it("encodes its function once, not once per item (a big upvalue re-encoded per task)", function()
    local pool = new_pool(2)
    local big = {}
    for i = 1, 20000 do big[i] = i end
    local items = {}
    for i = 1, 300 do items[i] = i end
    -- the upvalue is a snapshot taken when map is called, copied to each
    -- worker once: each call sees all of it
    local results = pool:map(function(i) return #big + i end, items)
    assert.equal(300, results.n)
    assert.equal(20001, results[1])
    assert.equal(20300, results[300])
    local seen = threading.Value(0)
    pool:map(function() seen:add(1) return #big end, items)
    assert.equal(300, seen:get())
  end)

  it("loads its function once per worker, so its upvalues persist between items", function()
    local pool = new_pool(1)
    local calls = 0
    local results = pool:map(function() calls = calls + 1 return calls end, { 1, 2, 3, 4, 5 })
    assert.same({ 1, 2, 3, 4, 5, n = 5 }, results)
    assert.equal(0, calls)         -- the caller's own upvalue is untouched
  end)

  it("returns the results in the order of the list", function()
    local pool = new_pool(3)
    local list = {}
    for i = 1, 50 do
      list[i] = i
    end
    -- uneven work, so tasks end out of order
    local r = pool:map(function(x)
      local n = 0
      for _ = 1, (50 - x) * 2000 do n = n + 1 end
      return x * x
    end, list)
    assert.equal(50, r.n)
    for i = 1, 50 do
      assert.equal(i * i, r[i])
    end
  end)

  it("returns the results in order with chunks", function()
    local pool = new_pool(2)
    local list = {}
    for i = 1, 1003 do
      list[i] = i
    end
    local r = pool:map(function(x) return -x end, list, 100)
    assert.equal(1003, r.n)
    for i = 1, 1003 do
      assert.equal(-i, r[i])
    end
  end)

  it("keeps nils among the items and results when the list has a field n", function()
    local pool = new_pool(2)
    for _, chunk in ipairs({ 1, 2 }) do
      local r = pool:map(function(x) if x then return x + 1 end end, { n = 4, 1, nil, 3 }, chunk)
      assert.same({ n = 4, 2, nil, 4, nil }, r)
    end
  end)

  it("carries tables, strings and objects through chunks", function()
    local pool = new_pool(2)
    local v = threading.Value(5)
    local long = string.rep("x", 100)
    local r = pool:map(function(x)
      if type(x) == "table" then return { x[1] * 2 } end
      if type(x) == "string" then return #x end
      return x:get()
    end, { { 21 }, long, v }, 2)
    assert.same({ n = 3, { 42 }, 100, 5 }, r)
  end)

  it("refuses an item that cannot move, naming its place in the list", function()
    local pool = new_pool(1)
    assert.has_error(function()
      pool:map(function(x) return x end, { 1, 2, { conn = coroutine.create(function() end) } }, 2)
    end, "cannot transfer value at list[3].conn: coroutine")
  end)

  it("raises when a chunk's result cannot move", function()
    local pool = new_pool(1)
    local ok, err = pcall(pool.map, pool, function() return coroutine.create(function() end) end, { 1, 2 }, 2)
    assert.is_false(ok)
    assert.truthy(err:find("cannot transfer value at result: coroutine", 1, true))
  end)

  it("returns an empty list for an empty list", function()
    local pool = new_pool(1)
    assert.same({ n = 0 }, pool:map(function(x) return x end, {}))
  end)

  it("raises the error of the first failing item in list order", function()
    local pool = new_pool(2)
    local ok, err = pcall(pool.map, pool, function(x)
      if x % 3 == 0 then error("bad item " .. x) end
      return x
    end, { 1, 2, 3, 4, 5, 6 }, 2)
    assert.is_false(ok)
    assert.truthy(err:find("bad item 3", 1, true))
  end)

  it("refuses a bad function, list or chunksize", function()
    local pool = new_pool(1)
    assert.has_error(function() pool:map(1, {}) end,
      "bad argument #1 to 'map' (function expected, got number)")
    assert.has_error(function() pool:map(print, 1) end,
      "bad argument #2 to 'map' (table expected, got number)")
    assert.has_error(function() pool:map(print, {}, 0) end,
      "bad argument #3 to 'map' (chunksize must be a positive integer)")
  end)
end)

describe("Future", function()
  it("reports pending, running and done as the task goes", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local first = pool:submit(blocker, started, go)
    local second = pool:submit(function() return 2 end)
    assert.is_true(started:wait(10))
    assert.is_true(first:running())
    assert.is_false(first:done())
    assert.is_false(second:running())
    assert.is_false(second:done())
    go:set()
    assert.same({ true, 2 }, { second:result(10) })
    assert.is_true(first:done())
    assert.is_false(first:running())
  end)

  it("returns nil, 'timeout' from result while the task runs", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local f = pool:submit(blocker, started, go)
    assert.is_true(started:wait(10))
    assert.same({ nil, "timeout" }, { f:result(0.01) })
    assert.same({ nil, "timeout" }, { f:result(0) })
    go:set()
    assert.same({ true, "released" }, { f:result(10) })
  end)

  it("cancels a pending future", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local first = pool:submit(blocker, started, go)
    local second = pool:submit(function() return "never" end)
    assert.is_true(started:wait(10))
    assert.is_true(second:cancel())
    assert.is_true(second:cancel())
    assert.is_true(second:cancelled())
    assert.is_true(second:done())
    assert.same({ false, "cancelled" }, { second:result() })
    assert.equal("cancelled", second:exception())
    go:set()
    first:result(10)
  end)

  it("refuses to cancel a running or finished future", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local f = pool:submit(blocker, started, go)
    assert.is_true(started:wait(10))
    assert.is_false(f:cancel())
    go:set()
    f:result(10)
    assert.is_false(f:cancel())
    assert.is_false(f:cancelled())
  end)

  it("returns nil from exception when the task succeeded and the error when it failed", function()
    local pool = new_pool(1)
    assert.is_nil(pool:submit(function() return 1 end):exception(10))
    local err = pool:submit(function() error("broke", 0) end):exception(10)
    assert.truthy(err:find("broke", 1, true))
  end)

  it("returns nil, 'timeout' from exception while the task runs", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local f = pool:submit(blocker, started, go)
    assert.is_true(started:wait(10))
    assert.same({ nil, "timeout" }, { f:exception(0.01) })
    go:set()
    assert.is_nil(f:exception(10))
  end)

  it("fails when a result cannot move, naming it", function()
    local pool = new_pool(1)
    local ok, err = pool:submit(function() return 1, coroutine.create(function() end) end):result(10)
    assert.is_false(ok)
    assert.truthy(err:find("cannot transfer value at results[2]: coroutine", 1, true))
  end)

  it("rejects a negative timeout", function()
    local pool = new_pool(1)
    local f = pool:submit(function() end)
    assert.has_error(function() f:result(-1) end,
      "bad argument #1 to 'result' (timeout must be a non-negative number)")
    assert.has_error(function() f:exception(-1) end,
      "bad argument #1 to 'exception' (timeout must be a non-negative number)")
  end)

  it("can be waited for in another thread", function()
    local pool = new_pool(1)
    local f = pool:submit(function() return "shared" end)
    local t = threading.start(function(fut) return fut:result(10) end, f)
    assert.same({ true, true, "shared" }, { t:join(10) })
  end)

  it("shows its state in tostring", function()
    local pool = new_pool(1)
    local f = pool:submit(function() end)
    f:result(10)
    assert.truthy(tostring(f):find("(done)", 1, true))
  end)
end)

-- n new Futures, and a thread started to complete them, the last first
-- (future i gets the result i).
local function ended_by_a_thread(n)
  local fs = {}
  for i = 1, n do fs[i] = threading.Future() end
  local t = threading.start(function(list)
    for i = #list, 1, -1 do list[i]:set_result(i) end
  end, fs)
  return fs, t
end

-- Whether the thread named `name` is seen blocked on a port (a wait on
-- several futures) within 10 s: threading.waits() is looked at until then.
local function until_blocked(name)
  local deadline = threading.monotonic() + 10
  while threading.monotonic() < deadline do
    for _, w in ipairs(threading.waits()) do
      if w.name == name and w.blocked_on and w.blocked_on:find("threading.Port", 1, true) then
        return true
      end
    end
    threading.sleep(0.001)
  end
  return false
end

describe("threading.wait", function()
  it("waits for every future by default", function()
    local pool = new_pool(2)
    local fs = {}
    for i = 1, 10 do
      fs[i] = pool:submit(function(x) return x end, i)
    end
    local done, not_done = threading.wait(fs, 10)
    assert.equal(10, #done)
    assert.equal(0, #not_done)
  end)

  it("returns at the first completion with first_completed", function()
    local pool = new_pool(2)
    local started, go = threading.Event(), threading.Event()
    local slow = pool:submit(blocker, started, go)
    local quick = pool:submit(function() return 1 end)
    local done, not_done = threading.wait({ slow, quick }, 10, "first_completed")
    assert.same({ quick }, done)
    assert.same({ slow }, not_done)
    go:set()
  end)

  it("returns at the first failure with first_exception", function()
    local pool = new_pool(2)
    local started, go = threading.Event(), threading.Event()
    local slow = pool:submit(blocker, started, go)
    local failing = pool:submit(function() error("x") end)
    local done, not_done = threading.wait({ slow, failing }, 10, "first_exception")
    assert.same({ failing }, done)
    assert.same({ slow }, not_done)
    go:set()
  end)

  it("waits for all with first_exception when nothing fails", function()
    local pool = new_pool(2)
    local fs = { pool:submit(function() return 1 end), pool:submit(function() return 2 end) }
    local done, not_done = threading.wait(fs, 10, "first_exception")
    assert.equal(2, #done)
    assert.equal(0, #not_done)
  end)

  it("returns what is done when the timeout passes", function()
    local pool = new_pool(2)
    local started, go = threading.Event(), threading.Event()
    local slow = pool:submit(blocker, started, go)
    local quick = pool:submit(function() return 1 end)
    quick:result(10)
    local done, not_done = threading.wait({ slow, quick }, 0.02)
    assert.same({ quick }, done)
    assert.same({ slow }, not_done)
    go:set()
  end)

  it("lists a future given twice once", function()
    local pool = new_pool(1)
    local f = pool:submit(function() end)
    local done = threading.wait({ f, f, f }, 10)
    assert.equal(1, #done)
  end)

  it("returns two empty lists for an empty list", function()
    assert.same({ {}, {} }, { threading.wait({}) })
  end)

  it("rejects an unknown return_when, a negative timeout and items that are not futures", function()
    assert.has_error(function() threading.wait({}, nil, "whenever") end,
      "bad argument #3 to 'wait' (invalid option 'whenever')")
    assert.has_error(function() threading.wait({}, -1) end,
      "bad argument #2 to 'wait' (timeout must be a non-negative number)")
    assert.has_error(function() threading.wait({ 1 }) end,
      "bad argument #1 to 'wait' (list of threading.Future expected, item 1 is a number)")
  end)

  it("waits on past a future that only starts running, until it ends", function()
    -- the future's first change (running) wakes the waiting thread without
    -- ending its wait; the pause before set_result lets the waiter look at
    -- that change first, so that it must still hear of the end
    for round = 1, 5 do
      local f = threading.Future()
      local name = "wait-running-" .. round
      local waiter = threading.Thread({ name = name, target = function(fut)
        local done = require("threading").wait({ fut })
        return #done
      end, args = { f } }):start()
      assert.is_true(until_blocked(name))
      assert.is_true(f:set_running_or_notify_cancel())
      threading.sleep(0.01)
      f:set_result(round)
      local ok, n = waiter:join(10)
      if not ok then
        waiter:cancel()
        waiter:join(10)
      end
      assert.same({ true, 1 }, { ok, n })
    end
  end)

  it("hears of hundreds of futures that end at once in another thread", function()
    local fs, t = ended_by_a_thread(300)
    local done, not_done = threading.wait(fs, 10)
    assert.equal(300, #done)
    assert.same({}, not_done)
    assert.is_true((t:join(10)))
    assert.same({ true, 300 }, { fs[300]:result() })
  end)

  it("returns at the first failure among many with first_exception", function()
    local fs = {}
    for i = 1, 100 do fs[i] = threading.Future() end
    local t = threading.start(function(list)
      for i = 1, 50 do list[i]:set_result(i) end
      list[77]:set_exception("boom")
    end, fs)
    local done, not_done = threading.wait(fs, 10, "first_exception")
    assert.is_true((t:join(10)))
    local failed = false
    for _, f in ipairs(done) do
      if f == fs[77] then failed = true end
    end
    assert.is_true(failed)
    assert.equal(51, #done)
    assert.equal(49, #not_done)
  end)

  it("can be interrupted by Thread:cancel", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local f = pool:submit(blocker, started, go)
    local t = threading.Thread({ name = "wait-cancel", target = function(fut)
      return require("threading").wait({ fut })
    end, args = { f } }):start()
    assert.is_true(until_blocked("wait-cancel"))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    go:set()
  end)
end)

describe("threading.as_completed", function()
  it("yields each future once, the finished ones first", function()
    local pool = new_pool(2)
    local started, go = threading.Event(), threading.Event()
    local slow = pool:submit(blocker, started, go)
    local quick = pool:submit(function() return 1 end)
    quick:result(10)
    local order = {}
    for f in threading.as_completed({ slow, quick, quick }, 10) do
      order[#order + 1] = f
      if f == quick then
        go:set()
      end
    end
    assert.same({ quick, slow }, order)
  end)

  it("raises a timeout error when the futures do not finish in time", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local slow = pool:submit(blocker, started, go)
    local ok, err = pcall(function()
      for _ in threading.as_completed({ slow }, 0.02) do end
    end)
    go:set()
    assert.is_false(ok)
    assert.truthy(err:find("timeout (1 of 1 futures unfinished)", 1, true))
  end)

  it("can be interrupted by Thread:cancel, as threading.wait can", function()
    local f = threading.Future()
    local t = threading.Thread({ name = "completed-cancel", target = function(fut)
      for _ in require("threading").as_completed({ fut }) do end
    end, args = { f } }):start()
    assert.is_true(until_blocked("completed-cancel"))
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    f:set_result(1) -- its set is gone with the thread's state: nobody to tell
    assert.same({ true, 1 }, { f:result(0) })
  end)

  it("lets a loop be left early: the futures end after its set is collected", function()
    local fs = {}
    for i = 1, 3 do fs[i] = threading.Future() end
    fs[1]:set_result(1)
    fs[2]:set_result(2)
    do
      local it = threading.as_completed(fs)
      assert.equal(fs[1], it())
      assert.equal(fs[2], it()) -- the set still watches fs[3]
      it = nil -- luacheck: ignore 311
    end
    collectgarbage()
    collectgarbage()
    threading.start(function(f) f:set_result(3) end, fs[3]):join(10)
    assert.same({ true, 3 }, { fs[3]:result(0) })
  end)

  it("hands out futures that end in another thread while the loop runs, each once", function()
    local fs, t = ended_by_a_thread(200)
    local seen, n = {}, 0
    for f in threading.as_completed(fs, 10) do
      assert.is_nil(seen[f])
      seen[f] = true
      n = n + 1
    end
    assert.is_true((t:join(10)))
    assert.equal(200, n)
  end)

  it("hands out a future cancelled while the loop waits, as it ends", function()
    local pool = new_pool(1)
    local started, go = threading.Event(), threading.Event()
    local busy = pool:submit(blocker, started, go)
    local queued = pool:submit(function() return "ran" end)
    assert.is_true(started:wait(10))
    -- a thread cancels the queued one, then lets the busy one end
    local t = threading.start(function(q, g)
      assert(q:cancel())
      g:set()
    end, queued, go)
    local order = {}
    for f in threading.as_completed({ busy, queued }, 10) do
      order[#order + 1] = f
    end
    assert.is_true((t:join(10)))
    assert.same({ queued, busy }, order)
    assert.is_true(queued:cancelled())
  end)

  it("rejects a list that is not a table and a negative timeout", function()
    assert.has_error(function() threading.as_completed(1) end,
      "bad argument #1 to 'as_completed' (table expected, got number)")
    assert.has_error(function() threading.as_completed({}, -1) end,
      "bad argument #2 to 'as_completed' (timeout must be a non-negative number)")
  end)
end)
