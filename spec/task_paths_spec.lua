-- Every blocking call of the module, inside a threading.async task: it
-- suspends only the calling task, returns what it returns in a thread once
-- another thread (or task) makes it ready, times out as it does in a
-- thread, and when the task is cancelled while it waits, raises
-- "cancelled" and leaves the object as if the call had never been made.
--
-- Each case names:
--   make()          the object(s) the call waits on, made in the main task
--   wait(o, t)      the call (timeout t, nil for none), in a waiting task;
--                   its results are compared packed
--   ready(o)        what lets the call proceed; run by a thread (or by the
--                   main task when `owner` is set: what only an owner may do)
--   got             wait's results once ready
--   timed_out       wait's results when its timeout passes first
--   probe(o)        after a cancelled wait and ready(o): true when what
--                   ready gave is still there (the cancelled call took
--                   nothing), or the object is as a cancellation leaves it
--   ready_first     false where a ready(o) made before the call does not
--                   count (a notify, the other party of a barrier)
--   got_first       wait's results when ready(o) came before the call, if
--                   not `got`
local threading = require("threading")
local async = require("threading.async")

local unpack = table.unpack or unpack

local function pack(...)
  return { n = select("#", ...), ... }
end

local cases = {
  {
    name = "Lock:acquire",
    make = function() local l = threading.Lock() l:acquire() return l end,
    wait = function(l, t) return l:acquire(true, t) end,
    ready = function(l) l:release() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(l) return l:acquire(false) end,
  },
  {
    name = "RLock:acquire",
    owner = true,
    make = function() local l = threading.RLock() l:acquire() return l end,
    wait = function(l, t)
      local ok = l:acquire(true, t)
      if ok then l:release() end
      return ok
    end,
    ready = function(l) l:release() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(l) return l:acquire(false) end,
  },
  {
    name = "Condition:acquire",
    owner = true,
    make = function() local c = threading.Condition() c:acquire() return c end,
    wait = function(c, t)
      local ok = c:acquire(true, t)
      if ok then c:release() end
      return ok
    end,
    ready = function(c) c:release() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(c) return c:acquire(false) end,
  },
  {
    name = "Semaphore:acquire",
    make = function() return threading.Semaphore(0) end,
    wait = function(s, t) return s:acquire(true, t) end,
    ready = function(s) s:release() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(s) return s:acquire(false) end,
  },
  {
    name = "BoundedSemaphore:acquire",
    make = function() local s = threading.BoundedSemaphore(1) s:acquire() return s end,
    wait = function(s, t) return s:acquire(true, t) end,
    ready = function(s) s:release() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(s) return s:acquire(false) end,
  },
  {
    name = "Lock:with",
    make = function() local l = threading.Lock() l:acquire() return l end,
    wait = function(l) return l:with(function() return "inside" end) end,
    ready = function(l) l:release() end,
    got = { n = 1, "inside" },
    probe = function(l) return l:acquire(false) end,
  },
  {
    name = "Condition:wait",
    make = function() return threading.Condition() end,
    wait = function(c, t)
      c:acquire()
      local r = pack(async.pcall(c.wait, c, t))
      c:release()
      if not r[1] then error(r[2], 0) end
      return unpack(r, 2, r.n)
    end,
    ready = function(c) c:acquire() c:notify() c:release() end,
    ready_first = false,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(c) return c:acquire(false) end,
  },
  {
    name = "Condition:wait_for",
    make = function() return { c = threading.Condition(), v = threading.Value(false) } end,
    wait = function(o, t)
      o.c:acquire()
      local r = pack(async.pcall(o.c.wait_for, o.c, function() return o.v:get() end, t))
      o.c:release()
      if not r[1] then error(r[2], 0) end
      return unpack(r, 2, r.n)
    end,
    ready = function(o) o.c:acquire() o.v:set("ready") o.c:notify_all() o.c:release() end,
    got = { n = 1, "ready" }, timed_out = { n = 1, false },
    probe = function(o) return o.c:acquire(false) end,
  },
  {
    name = "Event:wait",
    make = function() return threading.Event() end,
    wait = function(e, t) return e:wait(t) end,
    ready = function(e) e:set() end,
    got = { n = 1, true }, timed_out = { n = 1, false },
    probe = function(e) return e:is_set() end,
  },
  {
    name = "Queue:get",
    make = function() return threading.Queue() end,
    wait = function(q, t) return q:get(true, t) end,
    ready = function(q) q:put("item") end,
    got = { n = 1, "item" }, timed_out = { n = 2, nil, "empty" },
    probe = function(q) return q:get(false) == "item" end,
  },
  {
    name = "LifoQueue:get",
    make = function() return threading.LifoQueue() end,
    wait = function(q, t) return q:get(true, t) end,
    ready = function(q) q:put("item") end,
    got = { n = 1, "item" }, timed_out = { n = 2, nil, "empty" },
    probe = function(q) return q:get(false) == "item" end,
  },
  {
    name = "PriorityQueue:get",
    make = function() return threading.PriorityQueue() end,
    wait = function(q, t) return q:get(true, t) end,
    ready = function(q) q:put(3) end,
    got = { n = 1, 3 }, timed_out = { n = 2, nil, "empty" },
    probe = function(q) return q:get(false) == 3 end,
  },
  {
    name = "SimpleQueue:get",
    make = function() return threading.SimpleQueue() end,
    wait = function(q, t) return q:get(true, t) end,
    ready = function(q) q:put("item") end,
    got = { n = 1, "item" }, timed_out = { n = 2, nil, "empty" },
    probe = function(q) return q:get(false) == "item" end,
  },
  {
    name = "Queue:put (full)",
    make = function() local q = threading.Queue(1) q:put("first") return q end,
    wait = function(q, t) return q:put("second", true, t) end,
    ready = function(q) q:get() end,
    got = { n = 1, true }, timed_out = { n = 2, nil, "full" },
    probe = function(q) return q:qsize() == 0 end,
  },
  {
    name = "Queue:join",
    make = function() local q = threading.Queue() q:put("work") return q end,
    wait = function(q, t) return q:join(t) end,
    ready = function(q) q:get() q:task_done() end,
    got = { n = 1, true }, timed_out = { n = 2, nil, "timeout" },
    probe = function(q) return q:join(0) == true end,
  },
  {
    name = "Future:result",
    make = function() return threading.Future() end,
    wait = function(f, t) return f:result(t) end,
    ready = function(f) f:set_result(42) end,
    got = { n = 2, true, 42 }, timed_out = { n = 2, nil, "timeout" },
    probe = function(f) return f:done() end,
  },
  {
    name = "Future:exception",
    make = function() return threading.Future() end,
    wait = function(f, t) return f:exception(t) end,
    ready = function(f) f:set_exception("boom") end,
    got = { n = 1, "boom" }, timed_out = { n = 2, nil, "timeout" },
    probe = function(f) return f:done() end,
  },
  {
    name = "Thread:join",
    make = function()
      local go = threading.Event()
      return { go = go, t = threading.start(function(e) e:wait(60) return 7 end, go) }
    end,
    wait = function(o, t) return o.t:join(t) end,
    ready = function(o) o.go:set() end,
    got = { n = 2, true, 7 }, timed_out = { n = 2, nil, "timeout" },
    probe = function(o) return not o.t:is_alive() or o.t:join(10) == true end,
  },
  {
    name = "Timer:join",
    make = function()
      local t = threading.Timer(60, function() end)
      t:start()
      return t
    end,
    wait = function(t, timeout) return t:join(timeout) end,
    ready = function(t) t:cancel() end,
    got = { n = 1, true }, timed_out = { n = 2, nil, "timeout" },
    probe = function(t) return t:join(10) == true end,
  },
  {
    name = "Barrier:wait",
    make = function() return threading.Barrier(2) end,
    wait = function(b, t) return b:wait(t) end,
    ready = function(b) b:wait(10) end,
    ready_first = false,
    got = { n = 1, 1 }, timed_out = { n = 2, nil, "broken" },
    -- a waiter that leaves breaks the barrier, a task's cancellation too
    probe = function(b) return b.broken end,
  },
  {
    name = "threading.wait",
    make = function() return threading.Future() end,
    wait = function(f, t)
      local done, not_done = threading.wait({ f }, t)
      return #done, #not_done
    end,
    ready = function(f) f:set_result(1) end,
    got = { n = 2, 1, 0 }, timed_out = { n = 2, 0, 1 },
    probe = function(f) return f:done() end,
  },
  {
    name = "threading.as_completed",
    make = function() return { threading.Future(), threading.Future() } end,
    wait = function(fs, t)
      local got = {}
      -- the iterator called by hand, in async.pcall: on Lua 5.1 a task
      -- cannot yield inside a generic for's iterator call, nor inside pcall
      local ok, err = async.pcall(function()
        local step = threading.as_completed(fs, t)
        local f = step()
        while f ~= nil do
          got[#got + 1] = f == fs[2] and 2 or 1
          f = step()
        end
      end)
      if not ok and not tostring(err):find("timeout (", 1, true) then error(err, 0) end
      return #got, got[1], got[2]
    end,
    -- the second ends first, and comes out first
    ready = function(fs) fs[2]:set_result(2) fs[1]:set_result(1) end,
    got = { n = 3, 2, 2, 1 }, timed_out = { n = 3, 0 },
    got_first = { n = 3, 2, 1, 2 }, -- both done already: in the list's order
    probe = function(fs) return fs[1]:done() and fs[2]:done() end,
  },
  {
    name = "threading.select",
    make = function() return threading.Queue() end,
    wait = function(q, t) return threading.select({ q }, t) end,
    ready = function(q) q:put("item") end,
    got = { n = 2, 1, "item" }, timed_out = { n = 2, nil, "timeout" },
    probe = function(q) return q:get(false) == "item" end,
  },
}

-- Run body(case, o) as the main task of a scheduler, with the case's object.
local function with_case(case, body)
  return async.run(function()
    local o = case.make()
    return body(o)
  end)
end

-- Make the case's call ready: from a thread that waits for `go` first (so
-- that a call blocking the whole thread shows as `go` never set), or from
-- the main task itself for what only the owner may do. Returns whether the
-- main task ran (set `go`) while the call waited.
local function make_ready(case, o)
  if case.owner then
    case.ready(o)
    return true
  end
  local go = threading.Event()
  local t = threading.start(function(ready, obj, g)
    local came = g:wait(10)
    ready(obj)
    return came
  end, case.ready, o, go)
  go:set()
  return select(2, t:join(30))
end

for _, case in ipairs(cases) do
  describe(case.name .. " in a task", function()
    it("suspends only the calling task and returns what it returns in a thread", function()
      local r = { with_case(case, function(o)
        local waiter = async.spawn(function() return pack(case.wait(o, nil)) end)
        async.sleep(0) -- the waiter runs and waits
        local waiting = not waiter:done()
        local came = make_ready(case, o)
        local _, got = waiter:await(30)
        return waiting, came, got
      end) }
      assert.is_true(r[1], "the call returned before it was made ready")
      assert.is_true(r[2], "the main task did not run while the call waited")
      assert.same(case.got, r[3])
    end)

    if case.ready_first ~= false then
      it("returns at once what it returns in a thread when it is ready already", function()
        local got = with_case(case, function(o)
          if case.owner then
            case.ready(o)
          else
            threading.start(case.ready, o):join(30)
          end
          local task = async.spawn(function() return pack(case.wait(o, nil)) end)
          local _, r = task:await(30)
          return r
        end)
        assert.same(case.got_first or case.got, got)
      end)
    end

    if case.timed_out then
      it("times out as it does in a thread", function()
        local got = with_case(case, function(o)
          local _, r = async.spawn(function() return pack(case.wait(o, 0.05)) end):await(30)
          return r
        end)
        assert.same(case.timed_out, got)
      end)
    end

    it("raises cancelled when its task is cancelled meanwhile, taking nothing", function()
      local r = { with_case(case, function(o)
        local waiter = async.spawn(function() return pack(case.wait(o, nil)) end)
        async.sleep(0) -- the waiter runs and waits
        waiter:cancel()
        local ok, err = waiter:await(30)
        if case.owner then
          case.ready(o)
        else
          threading.start(case.ready, o):join(30)
        end
        return ok, err, case.probe(o)
      end) }
      assert.same({ false, "cancelled", true }, r)
    end)
  end)
end
