local threading = require("threading")
local async = require("threading.async")

-- Start fn(...) in a thread once the calling (main) thread is blocked in
-- select, so that the spec goes through the waiting path.
local function when_selecting(fn, ...)
  return threading.start(function(f, ...)
    local th = require("threading")
    local deadline = th.monotonic() + 30
    local function blocked()
      for _, w in ipairs(th.waits()) do
        if w.name == "MainThread" and (w.blocked_on or ""):find("Port", 1, true) then
          return true
        end
      end
      return false
    end
    while not blocked() and th.monotonic() < deadline do th.sleep(0.001) end
    return f(...)
  end, fn, ...)
end

describe("threading.select", function()
  it("returns the index and the item of a queue that has one", function()
    local a, b = threading.Queue(), threading.Queue()
    b:put("x")
    assert.same({ 2, "x" }, { threading.select({ a, b }, 0) })
  end)

  it("takes from the first ready waitable only, in the order given", function()
    local a, b = threading.Queue(), threading.Queue()
    a:put(1)
    b:put(2)
    assert.same({ 1, 1 }, { threading.select({ a, b }) })
    assert.equal(0, a:qsize())
    assert.equal(1, b:qsize())
  end)

  it("waits until another thread puts an item", function()
    local a, b = threading.Queue(), threading.Queue()
    local t = when_selecting(function(q) q:put("late") end, b)
    assert.same({ 2, "late" }, { threading.select({ a, b }, 30) })
    assert.is_true(t:join(10))
  end)

  it("waits for an Event to be set", function()
    local q, e = threading.Queue(), threading.Event()
    local t = when_selecting(function(ev) ev:set() end, e)
    assert.same({ 2, true }, { threading.select({ q, e }, 30) })
    assert.is_true(t:join(10))
  end)

  it("acquires a Lock once it is released, for the calling thread", function()
    local q, l = threading.Queue(), threading.Lock()
    local held = threading.Event()
    local holder = threading.start(function(lk, h) lk:acquire() h:set() end, l, held)
    assert.is_true(held:wait(10))
    assert.is_true(holder:join(10))
    local t = when_selecting(function(lk) lk:release() end, l)
    assert.same({ 2, true }, { threading.select({ q, l }, 30) })
    assert.is_true(l:locked())
    l:release()
    assert.is_true(t:join(10))
  end)

  it("takes a permit from a Semaphore", function()
    local s = threading.Semaphore(0)
    local t = when_selecting(function(sem) sem:release() end, s)
    assert.same({ 1, true }, { threading.select({ s }, 30) })
    assert.is_false(s:acquire(false))
    assert.is_true(t:join(10))
  end)

  it("returns a Future's result once it is done", function()
    local pool = threading.Pool(1)
    local gate = threading.Event()
    local f = pool:submit(function(g) g:wait(10) return 42, "x" end, gate)
    local t = when_selecting(function(g) g:set() end, gate)
    assert.same({ 2, true, 42, "x" }, { threading.select({ threading.Queue(), f }, 30) })
    assert.is_true(t:join(10))
    pool:shutdown()
  end)

  it("returns a Thread's join once it has ended", function()
    local gate = threading.Event()
    local worker = threading.start(function(g) g:wait(10) return "done" end, gate)
    local t = when_selecting(function(g) g:set() end, gate)
    assert.same({ 1, true, "done" }, { threading.select({ worker }, 30) })
    assert.is_true(t:join(10))
  end)

  it("counts a shut-down queue as ready, with nil, \"shutdown\"", function()
    local q = threading.Queue()
    q:shutdown()
    assert.same({ 1, nil, "shutdown" }, { threading.select({ q }, 1) })
  end)

  it("returns nil, \"timeout\" when nothing is ready in time", function()
    assert.same({ nil, "timeout" }, { threading.select({ threading.Queue(), threading.Event() }, 0.05) })
  end)

  it("does not wait with a timeout of 0", function()
    assert.same({ nil, "timeout" }, { threading.select({ threading.Queue() }, 0) })
  end)

  it("refuses what it cannot wait on, naming where it was", function()
    assert.has_error(function() threading.select({ threading.Queue(), {} }) end,
      "bad argument #1 to 'select' (waitables[2]: queue, event, future, thread, lock,"
        .. " semaphore or { queue, item } expected, got table)")
  end)

  it("refuses a bad list and a bad timeout with standard errors", function()
    assert.has_error(function() threading.select(42) end,
      "bad argument #1 to 'select' (table expected, got number)")
    assert.has_error(function() threading.select({}) end,
      "bad argument #1 to 'select' (no waitables given)")
    assert.has_error(function() threading.select({ threading.Queue() }, -1) end,
      "bad argument #2 to 'select' (timeout must be a non-negative number)")
  end)

  it("takes from every kind of queue", function()
    for _, kind in ipairs({ "Queue", "SimpleQueue", "LifoQueue", "PriorityQueue" }) do
      local empty, q = threading[kind](), threading[kind]()
      q:put(7)
      assert.same({ 2, 7 }, { threading.select({ empty, q }, 0) }, kind)
      assert.equal(0, q:qsize(), kind)
    end
  end)

  it("re-enters an RLock that the calling thread holds", function()
    local r = threading.RLock()
    assert.is_true(r:acquire())
    assert.same({ 1, true }, { threading.select({ r }, 0) })
    r:release()
    r:release()
    assert.has_error(function() r:release() end)
  end)

  it("refuses a Thread that was never started, as join does", function()
    local t = threading.Thread(function() end)
    assert.has_error(function() threading.select({ t }, 0) end,
      "cannot join a thread before it is started")
  end)

  it("waits on many waitables and takes the one that changed", function()
    local qs = {}
    for i = 1, 200 do qs[i] = threading.Queue() end
    local t = when_selecting(function(q) q:put("late") end, qs[150])
    assert.same({ 150, "late" }, { threading.select(qs, 30) })
    assert.is_true(t:join(10))
  end)

  it("takes only one when more changes come at once than one look takes", function()
    local qs = {}
    for i = 1, 100 do qs[i] = threading.Queue() end
    local t = when_selecting(function(...)
      for _, q in ipairs({ ... }) do q:put(true) end
    end, (table.unpack or unpack)(qs))
    local i = threading.select(qs, 30)
    assert.is_true(t:join(10))
    local left = 0
    for k = 1, 100 do left = left + qs[k]:qsize() end
    assert.equal(99, left)
    assert.equal(0, qs[i]:qsize())
  end)

  it("ends a cancelled thread blocked in it promptly, and the queue it watched loses no item", function()
    local q = threading.Queue()
    local t = threading.Thread{ name = "selecting", target = function(a)
      return require("threading").select({ a, require("threading").Event() })
    end, args = { q } }
    t:start()
    local deadline = threading.monotonic() + 30
    local function blocked()
      for _, w in ipairs(threading.waits()) do
        if w.name == "selecting" and (w.blocked_on or ""):find("Port", 1, true) then return true end
      end
      return false
    end
    while not blocked() and threading.monotonic() < deadline do threading.sleep(0.001) end
    assert.is_true(blocked())
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    q:put("kept")
    assert.same({ 1, "kept" }, { threading.select({ q }, 0) })
  end)

  it("suspends only the calling task inside threading.async", function()
    local r = async.run(function()
      local q = threading.Queue()
      async.spawn(function() q:put("from a task") end)
      return { threading.select({ threading.Event(), q }, 10) }
    end)
    assert.same({ 2, "from a task" }, r)
  end)
end)

describe("threading.select with send cases { queue, item }", function()
  it("puts the item into a queue that has room and returns its index and true", function()
    local a, out = threading.Queue(), threading.Queue(1)
    assert.same({ 2, true }, { threading.select({ a, { out, "sent" } }, 0) })
    assert.equal("sent", out:get(false))
  end)

  it("waits until a full queue has room, then puts the item", function()
    local out = threading.Queue(1)
    out:put("first")
    local t = when_selecting(function(q) return q:get() end, out)
    assert.same({ 1, true }, { threading.select({ { out, "second" } }, 30) })
    assert.same({ true, "first" }, { t:join(10) })
    assert.equal("second", out:get(false))
  end)

  it("puts nothing when a waitable listed before it is ready", function()
    local e, out = threading.Event(), threading.Queue()
    e:set()
    assert.same({ 1, true }, { threading.select({ e, { out, "unsent" } }, 0) })
    assert.equal(0, out:qsize())
  end)

  it("takes an item rather than sending when the get is listed first", function()
    local inbox, out = threading.Queue(), threading.Queue(1)
    local t = when_selecting(function(q) q:put("in") end, inbox)
    out:put("full")
    assert.same({ 1, "in" }, { threading.select({ inbox, { out, "x" } }, 30) })
    assert.is_true(t:join(10))
    assert.equal("full", out:get(false))
    assert.equal(0, out:qsize())
  end)

  it("times out on a queue that stays full, leaving it as it was", function()
    local out = threading.Queue(1)
    out:put("only")
    assert.same({ nil, "timeout" }, { threading.select({ { out, "more" } }, 0.05) })
    assert.equal(1, out:qsize())
    assert.equal("only", out:get(false))
  end)

  it("counts a shut-down queue as ready, with nil, \"shutdown\"", function()
    local out = threading.Queue()
    out:shutdown()
    assert.same({ 1, nil, "shutdown" }, { threading.select({ { out, "late" } }, 1) })
  end)

  it("inside a task, suspends only the task until the queue has room", function()
    local r = async.run(function()
      local out = threading.Queue(1)
      out:put("first")
      local sender = async.spawn(function()
        return threading.select({ { out, "second" } }, 30)
      end)
      local first = out:get() -- the sender is suspended, so this task runs
      local r = { first, sender:await() }
      r[#r + 1] = out:get(false)
      return r
    end)
    assert.same({ "first", true, 1, true, "second" }, r)
  end)

  it("names a send item that cannot be sent by where it was, and puts nothing", function()
    local out = threading.Queue()
    assert.has_error(function()
      threading.select({ threading.Event(), { out, coroutine.create(function() end) } }, 0)
    end, "cannot transfer value at waitables[2][2]: coroutine")
    assert.equal(0, out:qsize())
  end)

  it("refuses a PriorityQueue item without a priority, naming where it was", function()
    assert.has_error(function()
      threading.select({ { threading.PriorityQueue(), {} } }, 0)
    end, "bad argument #1 to 'select' (waitables[1][2]: priority expected at item[1]"
      .. " (number or string), got nil)")
  end)

  it("refuses a send case without an item, naming where it was", function()
    assert.has_error(function() threading.select({ threading.Event(), { threading.Queue() } }) end,
      "bad argument #1 to 'select' (waitables[2]: send case { queue, item } without an item)")
  end)
end)

-- The port that select keeps between calls (and a scheduler sleeps on).
describe("threading._port", function()
  it("drops on close what was posted and not yet taken, so a kept port starts clean", function()
    local p, q = threading._port(), threading.Queue()
    assert.is_true(p:watch(q, 5))
    q:put(1)
    p:close()
    assert.same({ nil, false }, { p:wait(0) })
  end)

  it("hands over at the next wait the tokens beyond what one wait returns", function()
    local p, qs = threading._port(), {}
    for i = 1, 100 do
      qs[i] = threading.Queue()
      assert.is_true(p:watch(qs[i], i))
    end
    for i = 1, 100 do qs[i]:put(i) end
    local got, waits = {}, 0
    while #got < 100 and waits < 100 do
      waits = waits + 1
      local tokens = p:wait(0)
      for _, t in ipairs(tokens or {}) do got[#got + 1] = t end
    end
    local want = {}
    for i = 1, 100 do want[i] = i end
    assert.same(want, got)
    assert.is_true(waits > 1)
    p:close()
  end)

  it("watches again after close: a closed port serves the next wait", function()
    local p, q = threading._port(), threading.Queue()
    assert.is_true(p:watch(q, 1))
    p:close()
    assert.is_true(p:watch(q, 2))
    q:put("x")
    assert.same({ 2 }, (p:wait(0)))
    p:close()
  end)
end)

describe("threading.select, one call after another", function()
  it("waits for its own waitables after a wait that ended on other ones", function()
    local a, b, c = threading.Queue(), threading.Queue(), threading.Queue()
    local t = when_selecting(function(x, y) x:put(1) y:put(2) end, a, b)
    assert.equal(1, (threading.select({ a, b }, 30)))
    assert.is_true(t:join(10))
    -- b's item is still there; the next call watches only c
    t = when_selecting(function(z) z:put(3) end, c)
    assert.same({ 1, 3 }, { threading.select({ c }, 30) })
    assert.is_true(t:join(10))
    assert.equal(2, b:get(false))
  end)
end)
