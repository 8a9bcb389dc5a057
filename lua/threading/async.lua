--- threading.async: coroutines scheduled in one OS thread, awaiting the
-- module's blocking calls without blocking that thread.
--
-- async.run(fn, ...) runs fn as a task under a scheduler and returns its
-- results once every task spawned under it has finished. Inside a task,
-- a blocking call of the module (a Lock's acquire, a queue's get, a
-- Condition's wait, Future:result, Thread:join, ...) tries its
-- non-blocking form and, if it must wait, calls its half here (the
-- "halves" section), which watches the object it waits on through its
-- scheduler's port (port.c) and yields: the object's next change posts
-- the task, and the scheduler resumes only the tasks posted to it, which
-- try their calls again (see block and the scheduler section). On Lua
-- 5.2+ the C methods do this themselves (task.c: they know a task's call
-- and reach its half through lua_callk); on Lua 5.1 and LuaJIT, which
-- cannot continue a C function after a yield, Lua wrappers stand in the
-- methods tables while a scheduler may run (threading.async.wrappers).
-- Outside a task every call goes straight to C and blocks as before. The
-- module's functions that wait are replaced in the module table: sleep,
-- wait, select and as_completed's step on 5.1 and LuaJIT only (by the
-- wrappers), threading.http's get and request on every version (here).
local threading = require("threading")

local async = {}

local error, pcall, select, setmetatable, tostring, type =
  error, pcall, select, setmetatable, tostring, type
local create, resume, yield, running, costatus =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running,
  coroutine.status
local unpack = table.unpack or unpack
local monotonic = threading.monotonic
local new_port = threading._port
local new_owner, act = threading._owner, threading._act
-- Lua 5.2+: the C methods that know a task's call hand one that must wait
-- to a half registered here (task.c); nil on 5.1 and LuaJIT, where the
-- wrappers of those methods stand in the methods tables instead
local defer = threading._defer
local TASK_ACQUIRE, TASK_GET, TASK_PUT, TASK_EVENT_WAIT, TASK_DONE, TASK_CONDITION,
  TASK_BARRIER, TASK_ITER, TASK_SHUTDOWN, TASK_SELECT, TASK_WAIT, TASK_SLEEP, TASK_NEXT =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 -- wait.h
local registry = debug.getregistry()

local function pack(...)
  return { n = select("#", ...), ... }
end

-- What a wrapper yields, and what the scheduler resumes it with.
local REQUEST = {}
local OK, TIMEOUT, FAIL, CANCEL = {}, {}, {}, {}
-- What a task that waits with a poll is resumed with when it may proceed:
-- it tries its poll again itself.
local AGAIN = {}
-- What a task waits for on an object (object.h): ANY hears of every change;
-- TAKE (an item, a lock, a unit) and ROOM (a free slot) only of the changes
-- that let one more waiter proceed, one task per change; DONE (a queue's
-- join) only of the end of its work.
local TAKE, ROOM, DONE = 1, 2, 3 -- ANY is 0, the default
-- The watch of a wait whose wake-up is posted straight to the port (a
-- Condition's notify posts the task it picked): nothing to arm.
local DIRECT = {}
-- The watch of a wait on several objects at once (threading.wait, select):
-- many(list) watches each of them for any change.
local Many = {}
local function many(list)
  return setmetatable({ list = list }, Many)
end

-- The watch of a wait on several tasks at once (gather): the end of any
-- of them retries the waiter.
local Tasks = {}
local Task = {} -- a task's methods (the tasks section)
local FINAL = { done = true, failed = true, cancelled = true }

local task_of = setmetatable({}, { __mode = "k" }) -- coroutine -> its task
local active -- the scheduler running in this state, or nil

-- The blocking methods that have a task's wrapper (Lua 5.1 and LuaJIT:
-- threading.async.wrappers; none on 5.2+): each
-- is { methods table, name, C method, wrapper }. While a scheduler may run
-- tasks (arm), the wrappers stand in their methods tables; otherwise
-- (disarm) the C methods do. Only a C method still in its place is
-- swapped, and only a wrapper still in its place is swapped back: a method
-- that a program set itself stays as it set it. Swapping them all costs a
-- few microseconds, so it is done per holder, not per step: async.run
-- holds them while it runs, a stepped scheduler from its first step until
-- it is closed (hold, let_go).
local installed = {}
local holders = 0

local function arm()
  for i = 1, #installed do
    local e = installed[i]
    e.out = rawget(e[1], e[2]) == e[3]
    if e.out then
      rawset(e[1], e[2], e[4])
    end
  end
end

local function disarm()
  for i = 1, #installed do
    local e = installed[i]
    if e.out and rawget(e[1], e[2]) == e[4] then
      rawset(e[1], e[2], e[3])
    end
    e.out = false
  end
end

local function hold()
  holders = holders + 1
  if holders == 1 then
    arm()
  end
end

local function let_go()
  holders = holders - 1
  if holders == 0 then
    disarm()
  end
end

-- Give the methods `makers` names of type_name a task's wrapper each
-- (make(C method, name) returns it), swapped in by arm (Lua 5.1 and
-- LuaJIT: threading.async.wrappers).
local function install(type_name, makers)
  local mt = registry[type_name]
  local methods = type(mt) == "table" and rawget(mt, "methods")
  if type(methods) ~= "table" then
    return
  end
  for name, make in pairs(makers) do
    local c = rawget(methods, name)
    if c ~= nil then
      installed[#installed + 1] = { methods, name, c, make(c, name) }
    end
  end
end

--- The task the calling coroutine belongs to, or nil outside any.
local function current_task()
  if active == nil then
    return nil
  end
  local co = running()
  return co and task_of[co] or nil
end

--[[
A task's wait (block). The task suspends until poll(pa, pb, pc) returns
true, and block then returns true and poll's other values, or until the
timeout passes, and block returns false; a poll's error is raised in the
task. pa, pb and pc let one poll function serve every wait of its kind,
with no closure made per wait. `watch` is what poll depends on: an object
of the module (its next change of `kind`, ANY if nil, posts the task to
its scheduler's port), a list of them (many), a Task or list of Tasks
(their end), or DIRECT (the wake-up comes to the port by itself: a
Condition's notify); nil only with no poll (a sleep, woken by its
deadline). A shielded wait is not cancelled: a cancellation that comes
meanwhile stays requested (Condition:wait taking its lock back).

The task does its own polling, in its own coroutine: it arms its watch,
tries once more (a change made before the watch was armed is not lost),
and yields only if that fails. Its scheduler files it as blocked and
resumes it with AGAIN when a change it watches comes (or its deadline
passes); the task then tries again, and either proceeds, or watches again
(a wake-up it was posted for went to someone else: it keeps its turn), or
gives up once its deadline has passed. A task cancelled while it waits is
resumed with CANCEL. Leaving, it disarms its watch, and a wake-up it was
posted for but did not use passes on to the next waiter (port.c).
]]

-- What a wait without a poll is resumed with (a sleep, an HTTP request
-- that the scheduler's loop drives).
local function settle(tag, ...)
  if tag == OK then
    return true, ...
  elseif tag == TIMEOUT then
    return false
  elseif tag == FAIL then
    error((...), 0)
  elseif tag == CANCEL then
    error("cancelled", 0)
  end
  error("a threading.async task was resumed by something other than its scheduler", 0)
end

-- Retry `task` when `t` ends (finish makes its awaiters dirty).
local function await_end(t, task)
  if not FINAL[t.state] then
    local a = t.awaiters or {}
    t.awaiters = a
    a[#a + 1] = task
  end
end

-- Arm the watch of me's wait: true if it has one that a change will wake
-- (false: what it names cannot be watched, a handle no longer alive).
local function arm_wait(me, watch, kind)
  local how = false
  if type(watch) == "userdata" then
    if me.sched.port:watch(watch, me.token, kind) then
      how = "object"
    end
  elseif watch == DIRECT then
    how = "direct"
  else
    local mt = getmetatable(watch)
    if mt == Task then
      how = "task"
      await_end(watch, me)
    elseif mt == Tasks then
      how = "task"
      for i = 1, #watch do
        await_end(watch[i], me)
      end
    elseif mt == Many and me.sched.port:watch_many(watch.list, me.token) then
      how = "many"
      watch = watch.list
    end
  end
  me.watching, me.watch_obj, me.watch_kind = how, watch, kind
  return how ~= false
end

-- The end of me's wait: its watch disarmed (a wake-up it was posted for
-- passes on, unless took: it proceeds with what it was posted for).
local function end_wait(me, took)
  local how = me.watching
  if how == "object" or how == "many" then
    me.sched.port:unwatch(me.token, took)
  end
  me.watching, me.watch_obj, me.watch_kind = false, false, false
  me.poll, me.poll_a, me.poll_b, me.poll_c = false, false, false, false
  me.deadline, me.shielded = false, false
end

local wait_woken -- the wait after a yield (below)

-- What a try of me's wait gave: proceed (true, poll's values), or yield
-- until a change comes.
local function tried_wait(me, ok, ...)
  if ok then
    end_wait(me, true)
    return true, ...
  end
  return wait_woken(me, yield(REQUEST))
end

-- A try after a wake-up: proceed, give up once the deadline has passed,
-- or watch again (keeping its turn) and try once more before yielding.
local function tried_again(me, ok, ...)
  if ok then
    end_wait(me, true)
    return true, ...
  end
  local d = me.deadline
  if d and monotonic() >= d then
    end_wait(me, false)
    return false
  end
  local how, s = me.watching, me.sched
  if how == "object" then
    s.port:watch(me.watch_obj, me.token, me.watch_kind, true)
  elseif how == "many" then
    s.port:watch_many(me.watch_obj, me.token)
  else
    return wait_woken(me, yield(REQUEST))
  end
  s.polls = s.polls + 1
  return tried_wait(me, me.poll(me.poll_a, me.poll_b, me.poll_c))
end

wait_woken = function(me, tag, ...)
  if tag == AGAIN then
    local s = me.sched
    s.polls = s.polls + 1
    return tried_again(me, me.poll(me.poll_a, me.poll_b, me.poll_c))
  elseif tag == OK then -- its scheduler tried for it (daemons_ready)
    end_wait(me, true)
    return true, ...
  end
  end_wait(me, false)
  if tag == CANCEL then
    error("cancelled", 0)
  elseif tag == FAIL then
    error((...), 0)
  end
  error("a threading.async task was resumed by something other than its scheduler", 0)
end

-- A wait without a poll, resumed.
local function slept(me, ...)
  me.deadline, me.shielded = false, false
  return settle(...)
end

-- A wait on something that cannot be watched: no change would come, so
-- the one try settles it.
local function tried_once(me, ok, ...)
  end_wait(me, ok)
  if ok then
    return true, ...
  end
  error("threading.async: a wait on something that cannot be watched", 0)
end

local function block(poll, timeout, watch, kind, shielded, pa, pb, pc)
  local me = task_of[running()]
  if me.watching then
    -- a poll of its last wait raised, and the task caught the error: that
    -- wait's watch goes now, passing on a wake-up it was posted for
    end_wait(me, false)
  end
  me.deadline, me.shielded = timeout and monotonic() + timeout or false, shielded or false
  if poll == nil then
    return slept(me, yield(REQUEST))
  end
  me.poll, me.poll_a, me.poll_b, me.poll_c = poll, pa, pb, pc
  local s = me.sched
  s.polls = s.polls + 1
  if arm_wait(me, watch, kind) then
    return tried_wait(me, poll(pa, pb, pc))
  end
  return tried_once(me, poll(pa, pb, pc))
end

-- A timeout argument as the C functions read it: ok, seconds (nil: none).
-- Not ok means the C function would raise on it: the caller lets C do so.
local function timeout_arg(t)
  if t == nil then
    return true, nil
  end
  local n = tonumber(t)
  if n ~= nil and n >= 0 then
    return true, n
  end
  return false
end

local function callable(f)
  if type(f) == "function" then
    return true
  end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- ------------------------------------------------------------ tasks

Task.__index = Task
Task.__name = "threading.async.Task"
-- A task belongs to its scheduler's state: refused by name if sent away.
threading._register_class(Task, "threading.async.Task", false)

function Task:__tostring()
  return ("threading.async.Task: %s (%s)"):format(self.id, self.state)
end

-- The outcome of a finished task, as Future:result gives it.
local function outcome(task)
  task.awaited = true
  if task.state == "done" then
    return true, unpack(task.results, 1, task.results.n)
  elseif task.state == "cancelled" then
    return false, "cancelled"
  end
  return false, task.err
end

local function check_task(self, fname)
  if getmetatable(self) ~= Task then
    error(("calling '%s' on bad self (threading.async.Task expected, got %s)"):format(
      fname, type(self)), 3)
  end
end

--- task:done() -> boolean
function Task:done()
  check_task(self, "done")
  return FINAL[self.state] == true
end

--- task:cancelled() -> boolean
function Task:cancelled()
  check_task(self, "cancelled")
  return self.state == "cancelled"
end

--- task:cancel() -> true if the cancellation was requested (the task had not
-- finished). The task gets the error "cancelled" at its next blocking call,
-- or never runs if it has not started.
function Task:cancel()
  check_task(self, "cancel")
  if FINAL[self.state] then
    return false
  end
  self.cancel_requested = true
  local s = self.sched
  if s.blocked[self.token] == self then
    s.dirty[#s.dirty + 1] = self
  end
  return true
end

--- task:await([timeout]) -> true, ... | false, err | nil, "timeout"
-- Inside a task of the same scheduler, suspends the caller until the task
-- finishes. Outside a task, works only on a finished task.
function Task:await(timeout)
  check_task(self, "await")
  local ok, t = timeout_arg(timeout)
  if not ok then
    error("bad argument #1 to 'await' (timeout must be a non-negative number)", 2)
  end
  if FINAL[self.state] then
    return outcome(self)
  end
  local me = current_task()
  if me == nil or me.sched ~= self.sched then
    error("bad argument #1 to 'await' (the task has not finished and can only be"
      .. " awaited from a task of its scheduler)", 2)
  end
  if me == self then
    error("bad argument #1 to 'await' (a task cannot await itself)", 2)
  end
  if not block(function()
    return FINAL[self.state] == true
  end, t, self) then
    return nil, "timeout"
  end
  return outcome(self)
end

--- task:result() -> like await, for a finished task (raises otherwise)
function Task:result()
  check_task(self, "result")
  if not FINAL[self.state] then
    error("bad argument #1 to 'result' (the task has not finished)", 2)
  end
  return outcome(self)
end

-- ------------------------------------------------------------ scheduler

--[[
A scheduler resumes the ready tasks one round at a time. A task that must
wait has armed its watch (block): on the object, with the port (port.c:
the object's next change posts the token), on each object of a list
(threading.wait's futures, select's waitables: a change of any of them
posts the token), or on a Task (its end marks the waiter dirty); every
wait names what it waits on (a Pool announces each worker that leaves, for
Pool:shutdown), so nothing hears of every change. It then yields a
request, and the scheduler files it as blocked under its token, with its
deadline in a binary heap. When no task is ready, the scheduler sleeps in
port:wait until a token comes or the nearest deadline passes, and wakes
only the tasks whose tokens came, whose deadlines passed, or that were
marked dirty (cancelled, or awaiting a task that ended): each is resumed
to try its call again itself. Nothing else is woken. A task that yielded
to let the others run (a bare coroutine.yield, sleep(0)) is ready again
after those woken in the same round.
]]

local function heap_push(h, deadline, task)
  local n = h.n + 1
  h.n = n
  h[n] = { deadline, task }
  while n > 1 do
    local parent = (n - n % 2) / 2
    if h[parent][1] <= h[n][1] then
      break
    end
    h[parent], h[n] = h[n], h[parent]
    n = parent
  end
end

local function heap_pop(h)
  local top = h[1]
  h[1] = h[h.n]
  h[h.n] = nil
  h.n = h.n - 1
  local i, n = 1, h.n
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and h[l][1] < h[m][1] then
      m = l
    end
    if r <= n and h[r][1] < h[m][1] then
      m = r
    end
    if m == i then
      break
    end
    h[m], h[i] = h[i], h[m]
    i = m
  end
  return top
end

-- The deadline at the top of the heap, dropping the entries of tasks that
-- woke meanwhile or wait for another deadline now (a task woken that
-- waits on with the same deadline is pushed again when it parks).
local function next_deadline(s)
  local h = s.heap
  while h.n > 0 do
    local e = h[1]
    local task = e[2]
    if s.blocked[task.token] == task and task.deadline == e[1] then
      return e[1]
    end
    heap_pop(h)
    if task.heap_at == e[1] then
      task.heap_at = false
    end
  end
  return nil
end

-- make_ready with what to resume it with packed already
local function make_ready_packed(s, task, args)
  task.resume_args = args or false
  task.state = "ready"
  s.ready[s.tail] = task
  s.tail = s.tail + 1
end

-- File a task as ready, to be resumed with the values given. Up to three
-- (a wake-up's tag and the values most polls give) are kept in fields of
-- the task, not in a table: most wake-ups allocate nothing.
local function make_ready(s, task, ...)
  local n = select("#", ...)
  if n > 3 then
    make_ready_packed(s, task, pack(...))
    return
  elseif n == 1 then
    task.resume_1 = ...
  elseif n == 2 then
    task.resume_1, task.resume_2 = ...
  elseif n == 3 then
    task.resume_1, task.resume_2, task.resume_3 = ...
  end
  task.resume_n = n
  make_ready_packed(s, task, false)
end

local next_id = 0

local function new_task(s, fn, ...)
  next_id = next_id + 1
  -- a token names the task to the port while it lives; an ended task's is
  -- used again, so the port keeps one watch node per live task, not one
  -- per task ever run (a token posted late only retries its next owner)
  local token = s.free[#s.free]
  if token then
    s.free[#s.free] = nil
  else
    s.ntok = s.ntok + 1
    token = s.ntok
  end
  local body = fn
  if type(fn) ~= "function" then
    body = function(...)
      return fn(...)
    end
  end
  -- owner: who holds the RLocks and Condition locks it takes (port.c)
  -- the fields of its waits exist from the start, false when unused: a
  -- field set or read while absent costs a look at the metatable
  local task = setmetatable({
    id = next_id, token = token, sched = s, co = create(body), state = "ready",
    started = false, owner = new_owner(), cancel_requested = false,
    poll = false, poll_a = false, poll_b = false, poll_c = false, deadline = false,
    shielded = false, watching = false, watch_obj = false, watch_kind = false,
    heap_at = false, resume_args = false, resume_n = 0, resume_1 = false,
    resume_2 = false, resume_3 = false,
  }, Task)
  task_of[task.co] = task
  s.ntasks = s.ntasks + 1
  s.all[#s.all + 1] = task
  make_ready(s, task, ...)
  return task
end

local function finish(s, task, state, r)
  if not task.daemon then
    s.ntasks = s.ntasks - 1
  end
  if task.watching then
    -- it ended inside a wait (its poll raised): a wake-up it was posted
    -- for passes on
    end_wait(task, false)
  end
  s.free[#s.free + 1] = task.token
  task.state = state
  s.nended = s.nended + 1
  task.end_seq = s.nended -- the order tasks ended in (gather's first failure)
  task.poll, task.deadline, task.resume_args = false, false, false
  if state == "done" then
    task.results = { n = r.n - 1, unpack(r, 2, r.n) }
  elseif state == "failed" then
    task.err = r[2]
  end
  local awaiters = task.awaiters
  if awaiters then
    task.awaiters = nil
    for i = 1, #awaiters do
      s.dirty[#s.dirty + 1] = awaiters[i]
    end
  end
end

-- A blocked task is no longer blocked (its watch is its own to disarm:
-- end_wait).
local function unblock(s, task)
  s.blocked[task.token] = nil
end

-- Make a blocked task ready, to be resumed with tag and the values given.
local function wake(s, task, ...)
  s.blocked[task.token] = nil
  make_ready(s, task, ...)
end

-- File a task that yielded a request as blocked (block has armed its
-- watch), with its deadline in the heap once per wait.
local function park(s, task)
  task.state = "blocked"
  s.blocked[task.token] = task
  local deadline = task.deadline
  if deadline and task.heap_at ~= deadline then
    task.heap_at = deadline
    heap_push(s.heap, deadline, task)
  end
end

-- File a task by what its resume gave: its end, a bare yield, or a
-- request (block: what it waits for). acting: who acted before the
-- resume, named again first.
local function stepped(s, task, acting, ok, tag, ...)
  act(acting)
  if costatus(task.co) == "dead" then
    if ok then
      finish(s, task, "done", pack(ok, tag, ...))
    elseif tag == "cancelled" and (task.cancelled_by_us or s.cancelled) then
      finish(s, task, "cancelled")
    else
      -- if a poll raised this thread's cancellation, every task gets it
      s.check_cancel = true
      finish(s, task, "failed", { n = 2, ok, tag })
    end
    return
  end
  if tag ~= REQUEST then
    -- a bare coroutine.yield() lets the others run, those a change has
    -- woken meanwhile too: it is ready again once the port's tokens are
    -- taken (retry_woken), behind the tasks they wake, as in asyncio
    task.state = "ready"
    task.resume_n = 0
    s.yielded[#s.yielded + 1] = task
    return
  end
  if (s.cancelled or task.cancel_requested) and not task.shielded then
    task.cancel_requested = false
    task.cancelled_by_us = true
    make_ready(s, task, CANCEL)
    return
  end
  park(s, task)
end

-- Resume one ready task and file it by what it did.
local function step(s, task)
  if not task.started and task.cancel_requested then
    finish(s, task, "cancelled")
    return
  end
  task.started = true
  task.state = "running"
  -- the locks it takes are the task's, not its thread's, and its own
  -- blocking calls (not those of a coroutine it made) are a task's (task.c)
  local acting = act(task.owner, task.co)
  local args = task.resume_args
  if args then
    task.resume_args = false
    return stepped(s, task, acting, resume(task.co, unpack(args, 1, args.n)))
  end
  -- the values are dropped before the resume, as the table was
  local n = task.resume_n
  if n == 0 then
    return stepped(s, task, acting, resume(task.co))
  end
  local a = task.resume_1
  task.resume_1 = false
  if n == 1 then
    return stepped(s, task, acting, resume(task.co, a))
  end
  local b = task.resume_2
  task.resume_2 = false
  if n == 2 then
    return stepped(s, task, acting, resume(task.co, a, b))
  end
  local c = task.resume_3
  task.resume_3 = false
  return stepped(s, task, acting, resume(task.co, a, b, c))
end

-- Wake one blocked task that may proceed: cancelled (unless shielded), or
-- to try its poll again (it gives up itself once its deadline has
-- passed), or, waiting with no poll, once its deadline has passed.
local function retry(s, task, now)
  if s.blocked[task.token] ~= task then
    return now -- woke already
  end
  if (task.cancel_requested or s.cancelled) and not task.shielded then
    task.cancel_requested = false
    task.cancelled_by_us = true
    wake(s, task, CANCEL)
  elseif task.poll then
    wake(s, task, AGAIN)
  elseif task.deadline then
    now = now or monotonic()
    if now >= task.deadline then
      wake(s, task, TIMEOUT)
    end
  end
  return now
end

-- What the scheduler's own try of a blocked task's poll gave
-- (daemons_ready): wake it with the poll's values or its error, or leave
-- it blocked. acting: who acted before the poll, named again first.
local function probed(s, task, acting, ok, done, ...)
  act(acting)
  if not ok then
    wake(s, task, FAIL, done)
  elseif done then
    wake(s, task, OK, ...)
  end
end

-- Retry the tasks that may proceed: those whose tokens came, the dirty
-- ones, those whose deadlines passed; all of them if tokens were lost or
-- the scheduler was cancelled.
local function retry_woken(s, tokens, everything)
  local now
  if everything or s.cancelled then
    local all = {}
    for _, task in pairs(s.blocked) do
      all[#all + 1] = task
    end
    for i = 1, #all do
      now = retry(s, all[i], now)
    end
  end
  local blocked, ready = s.blocked, s.ready
  for i = 1, tokens and #tokens or 0 do
    local tok = tokens[i]
    local task = blocked[tok]
    if task then
      if task.poll and not task.cancel_requested then
        -- the common wake-up, as retry and make_ready would file it
        blocked[tok] = nil
        task.state, task.resume_args, task.resume_n, task.resume_1 = "ready", false, 1, AGAIN
        ready[s.tail] = task
        s.tail = s.tail + 1
      else
        now = retry(s, task, now)
      end
    end
  end
  local dirty = s.dirty
  if #dirty > 0 then
    -- the tasks these retries mark dirty go to the other list, for the
    -- next round; the two lists take turns
    s.dirty = s.spare_dirty or {}
    s.spare_dirty = nil
    for i = 1, #dirty do
      now = retry(s, dirty[i], now)
    end
    for i = #dirty, 1, -1 do
      dirty[i] = nil
    end
    s.spare_dirty = dirty
  end
  local h = s.heap
  while true do
    local d = next_deadline(s)
    if d == nil then
      break
    end
    now = now or monotonic()
    if d > now then
      break
    end
    local e = heap_pop(h)
    e[2].heap_at = false
    now = retry(s, e[2], now)
  end
  local yielded = s.yielded
  for i = 1, #yielded do
    ready[s.tail] = yielded[i] -- made "ready" with nothing to resume with
    s.tail = s.tail + 1
    yielded[i] = nil
  end
end

local testcancel = threading.testcancel
local wait_point = threading._wait_point

-- The HTTP requests of async.run's tasks run in this thread, on a driver
-- (http_io.c) that the loop pumps instead of sleeping in its port while
-- requests are in flight. One per state, made at the first request and
-- kept, so that a later async.run reuses its connections.
local http_driver
local new_http_driver -- threading.http's _driver, once the module is loaded

-- Take what was posted, waiting for it until the timeout passes (not at
-- all if 0). With HTTP requests in flight, pump them first, waiting there
-- instead (the port's fd ends that wait), and wake the tasks whose
-- requests ended: their results come with the wake-up.
local function sleep_in(s, timeout)
  local d = s.http
  if d == nil then
    return s.port_wait(s.port, timeout, s.tokens)
  end
  if s.fd == nil then
    s.fd = s.port:fd()
  end
  local busy, ended, lost
  if timeout == 0 then
    busy, ended, lost = d.pump(s.fd, 0, OK)
  else
    -- a wait: in the main thread, Ctrl-C ends it (curl's poll returns at
    -- the signal) and the end of the wait raises "interrupted!"
    wait_point(1)
    busy, ended, lost = d.pump(s.fd, timeout, OK)
    wait_point(2)
  end
  if busy then
    timeout = 0
  end
  if ended ~= nil then
    for i = 1, #ended, 2 do
      local task = s.blocked[ended[i]]
      if task ~= nil and task.driven then
        unblock(s, task)
        make_ready_packed(s, task, ended[i + 1]) -- OK, and what get returns
      end
    end
  end
  if lost then
    -- a report was lost for memory: wake every driven task whose request
    -- is done; it reads the outcome from the future
    for _, task in pairs(s.blocked) do
      if task.driven and task.request:done() then
        unblock(s, task)
        make_ready(s, task, OK)
      end
    end
  end
  return s.port_wait(s.port, timeout, s.tokens)
end

-- Once only daemons are left: retry those blocked on what has happened
-- already (their wake-up may still be on its way to the port). True if one
-- became ready.
local function daemons_ready(s)
  local now
  for _, task in pairs(s.blocked) do
    if task.daemon then
      if task.poll and not task.cancel_requested and not s.cancelled then
        -- tried here, not by the task: a daemon resumed to try and fail
        -- would only block again, and the loop would spin
        s.polls = s.polls + 1
        local acting = act(task.owner) -- what the poll takes is the task's
        probed(s, task, acting, pcall(task.poll, task.poll_a, task.poll_b, task.poll_c))
      else
        now = retry(s, task, now)
      end
    end
  end
  return s.head < s.tail
end

-- One round: the tasks ready now (not those they make ready), so that a
-- task that only yields cannot starve the blocked ones.
local function run_round(s)
  local stop = s.tail
  while s.head < stop do
    local task = s.ready[s.head]
    s.ready[s.head] = nil
    s.head = s.head + 1
    step(s, task)
  end
end

local function loop(s)
  -- a daemon that is ready still runs: the callbacks of a future that the
  -- last task awaited run before async.run returns
  while s.ntasks > 0 or s.head < s.tail do
    run_round(s)
    if s.ntasks == 0 and s.head == s.tail and #s.yielded == 0 and not daemons_ready(s) then
      break
    end
    local timeout = 0
    if s.head == s.tail and #s.dirty == 0 and #s.yielded == 0 then
      local d = next_deadline(s)
      if d then
        timeout = d - monotonic()
        if timeout < 0 then
          timeout = 0
        end
      else
        timeout = nil
      end
    end
    local ok, tokens, everything
    if s.http == nil then
      ok, tokens, everything = pcall(s.port_wait, s.port, timeout, s.tokens)
    else
      ok, tokens, everything = pcall(sleep_in, s, timeout)
    end
    if not ok then
      -- this OS thread was cancelled: every task gets the cancellation
      s.cancelled = true
      s.cancel_error = tokens
      tokens, everything = {}, true
    end
    retry_woken(s, tokens, everything)
    if s.check_cancel then
      -- a request failed: if it was this thread's cancellation, every task
      -- gets it
      s.check_cancel = false
      local cok, err = pcall(testcancel)
      if not cok then
        s.cancelled = true
        s.cancel_error = err
        retry_woken(s, {}, true)
      end
    end
  end
end

local function report_lost(s, main)
  if s.cancelled then
    return
  end
  for _, task in ipairs(s.all) do
    if task ~= main and task.state == "failed" and not task.awaited then
      io.stderr:write(("threading.async: error in task %d (never awaited):\n%s\n"):format(
        task.id, tostring(task.err)))
    end
  end
end

local function new_scheduler()
  local port = new_port()
  return {
    ready = {}, head = 1, tail = 1, ntasks = 0, all = {}, ntok = 0, free = {}, nended = 0,
    blocked = {}, dirty = {}, yielded = {}, heap = { n = 0 },
    -- port_wait(port, timeout, tokens): the tokens posted, in the table
    -- that each wait fills again
    port = port, port_wait = port.wait, polls = 0, tokens = {},
  }
end

-- The end of a scheduler: drop its watches (a wake-up posted to a task that
-- will not run now passes on to the next waiter), end its tasks' waits on
-- Conditions and Barriers as cancelled ones end, and cancel the requests of tasks that will
-- not run again (their connections are released now, not when the server
-- answers).
local function close_scheduler(s)
  s.port:close()
  for _, task in ipairs(s.all) do
    if task.request ~= nil then
      task.request:cancel()
      task.request = nil
    end
    if task.ticket ~= nil then
      -- as a cancelled task's would: its Condition wait leaves the queue
      -- (a notify that picked it passes on), its Barrier wait breaks the
      -- barrier
      task.ticket:leave(true)
      task.ticket = nil
    end
  end
  if s.http ~= nil then
    s.http.settle()
  end
end

--- async.run(fn, ...) -> fn's results
-- Runs fn(...) as a task under a new scheduler in the calling coroutine and
-- returns its results when every task spawned under the scheduler has
-- finished; raises fn's error if it failed.
function async.run(fn, ...)
  if not callable(fn) then
    error("bad argument #1 to 'run' (function expected, got " .. type(fn) .. ")", 2)
  end
  if active ~= nil then
    error("async.run cannot be called while a scheduler runs in this state", 2)
  end
  local s = new_scheduler()
  s.pumps = true -- its loop can pump HTTP requests (a stepped one cannot)
  local main = new_task(s, fn, ...)
  active = s
  hold()
  local ok, err = pcall(loop, s)
  active = nil
  let_go()
  act(nil) -- even if an error cut a task's turn short, no task acts now
  -- drops every watch; a wake-up posted to a task that will not run now
  -- passes on to the next waiter
  close_scheduler(s)
  if not ok then
    error(err, 0)
  end
  report_lost(s, main)
  if s.cancelled then
    error(s.cancel_error, 0)
  end
  if main.state == "done" then
    return unpack(main.results, 1, main.results.n)
  elseif main.state == "cancelled" then
    error("cancelled", 0)
  end
  error(main.err, 0)
end

-- The calling task, or an error (at the caller's caller) naming fname.
local function calling_task(fname)
  local me = current_task()
  if me == nil then
    error(("async.%s must be called from a task (inside async.run)"):format(fname), 3)
  end
  return me
end

--- async.spawn(fn, ...) -> Task: start fn(...) as another task of the
-- running scheduler.
function async.spawn(fn, ...)
  if not callable(fn) then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  return new_task(calling_task("spawn").sched, fn, ...)
end

-- ------------------------------------------------------------ gather, wait_for

-- What gather and wait_for accept, as a task of the calling scheduler: a
-- function runs as a new task (owned: the caller cancels it when it gives
-- up); a Future or a Thread is awaited by a new task (owned too; cancelling
-- it leaves the future or thread alone); a Task of the scheduler is itself.
-- nil and a description of what was found if x is none of these.
local function awaitable_kind(x, me)
  local mt = getmetatable(x)
  if mt == Task then
    if x.sched ~= me.sched then
      return nil, "a task of another scheduler"
    elseif x == me then
      return nil, "the calling task itself"
    end
    return "task"
  elseif type(x) == "function" or (type(x) == "table" and callable(x)) then
    return "function"
  end
  local name = type(mt) == "table" and rawget(mt, "__name")
  if name == "threading.Future" or name == "threading.Thread" then
    return "await"
  end
  return nil, type(x)
end

local function as_task(me, x, kind, ...)
  if kind == "task" then
    return x, false
  elseif kind == "function" then
    return new_task(me.sched, x, ...), true
  end
  return new_task(me.sched, function()
    local r = pack(x:await())
    if r[1] then
      return unpack(r, 2, r.n)
    end
    error(r[2], 0)
  end), true
end

-- Cancel the tasks a gather or wait_for started and wait until they have
-- ended (shielded: a cancellation of the caller meanwhile stays requested),
-- so that what they held is released before the caller goes on.
local function cancel_owned(tasks, owned)
  local left = setmetatable({}, Tasks)
  for i = 1, #tasks do
    if owned[i] and not FINAL[tasks[i].state] then
      tasks[i]:cancel()
      left[#left + 1] = tasks[i]
    end
  end
  if #left > 0 then
    block(function()
      for i = 1, #left do
        if not FINAL[left[i].state] then
          return false
        end
      end
      return true
    end, nil, left, nil, true)
  end
  for i = 1, #tasks do
    if owned[i] then
      tasks[i].awaited = true -- its outcome is the caller's to report
    end
  end
end

--- async.gather(list[, timeout]) -> results | nil, "timeout"
-- Waits in the calling task until every item of the list has finished and
-- returns their results in the list's order, each packed: results[i] is
-- { n = count, ... }. Items: functions (each runs as a new task), Tasks of
-- this scheduler, Futures and Threads. The first item to fail (or to be
-- cancelled) has its error raised at once; the tasks gather started are
-- then cancelled, as they are on a timeout or when the calling task is
-- cancelled, and gather returns once they have ended. Tasks, futures and
-- threads passed in are never cancelled by it.
function async.gather(list, timeout)
  if type(list) ~= "table" then
    error("bad argument #1 to 'gather' (table expected, got " .. type(list) .. ")", 2)
  end
  local ok, t = timeout_arg(timeout)
  if not ok then
    error("bad argument #2 to 'gather' (timeout must be a non-negative number)", 2)
  end
  local me = calling_task("gather")
  local n, kinds = #list, {}
  for i = 1, n do
    local kind, got = awaitable_kind(list[i], me)
    if kind == nil then
      error(("bad argument #1 to 'gather' (list[%d]: function, task, future or thread"
        .. " expected, got %s)"):format(i, got), 2)
    end
    kinds[i] = kind
  end
  local tasks, owned = setmetatable({}, Tasks), {}
  for i = 1, n do
    tasks[i], owned[i] = as_task(me, list[i], kinds[i])
  end
  local failed
  local function settled()
    local pending = false
    for i = 1, n do
      local tk = tasks[i]
      local st = tk.state
      if st == "failed" or st == "cancelled" then
        if failed == nil or tk.end_seq < failed.end_seq then
          failed = tk
        end
      elseif st ~= "done" then
        pending = true
      end
    end
    return failed ~= nil or not pending
  end
  local r = { true, true }
  if not settled() then
    r = pack(async.pcall(block, settled, t, tasks))
  end
  if not r[1] or not r[2] then
    cancel_owned(tasks, owned)
    if not r[1] then
      error(r[2], 0) -- the calling task was cancelled
    end
    return nil, "timeout"
  end
  if failed ~= nil then
    local _, err = outcome(failed)
    cancel_owned(tasks, owned)
    error(err, 0)
  end
  local results = {}
  for i = 1, n do
    results[i] = pack(select(2, outcome(tasks[i])))
  end
  return results
end

--- async.wait_for(timeout, fn, ...) -> fn's results | nil, "timeout"
-- Runs fn(...) as a new task and waits for it in the calling task for at
-- most timeout seconds (nil: no limit). On a timeout the task is cancelled
-- and wait_for returns once it has ended; fn's error is raised. fn may also
-- be a Task (cancelled on a timeout too), a Future or a Thread (awaited;
-- they are left running). A cancellation of the caller cancels the task.
function async.wait_for(timeout, fn, ...)
  local ok, t = timeout_arg(timeout)
  if not ok then
    error("bad argument #1 to 'wait_for' (timeout must be a non-negative number)", 2)
  end
  local me = calling_task("wait_for")
  local kind, got = awaitable_kind(fn, me)
  if kind == nil then
    error("bad argument #2 to 'wait_for' (function, task, future or thread expected, got "
      .. got .. ")", 2)
  end
  -- what it waits on is its to cancel, a Task passed in too
  local task = as_task(me, fn, kind, ...)
  local tasks = setmetatable({ task }, Tasks)
  local r = pack(async.pcall(task.await, task, t))
  if not r[1] or r[2] == nil then
    cancel_owned(tasks, { true })
    if not r[1] then
      error(r[2], 0)
    end
    return nil, "timeout"
  end
  if r[2] then
    return unpack(r, 3, r.n)
  end
  error(r[3], 0)
end

-- ------------------------------------------------- schedulers driven from outside

--[[
A scheduler that an event loop drives (luv, cqueues, copas...): instead of
sleeping in its port, it is stepped when its file descriptor is readable
or its next deadline comes. One pass runs what is ready and takes what was
posted, never waiting.
]]
local Scheduler = {}
Scheduler.__index = Scheduler
Scheduler.__name = "threading.async.Scheduler"
threading._register_class(Scheduler, "threading.async.Scheduler", false)

-- Run until no task is ready, without blocking.
local function drive(s)
  repeat
    run_round(s)
    local ok, tokens, everything = pcall(s.port_wait, s.port, 0, s.tokens)
    if not ok then
      s.cancelled = true
      s.cancel_error = tokens
      tokens, everything = {}, true
    end
    retry_woken(s, tokens, everything)
  until s.head == s.tail and #s.dirty == 0 and #s.yielded == 0
end

local function check_scheduler(self, fname)
  if getmetatable(self) ~= Scheduler then
    error(("calling '%s' on bad self (threading.async.Scheduler expected)"):format(fname), 3)
  end
  if self.closed then
    error(("calling '%s' on bad self (scheduler closed)"):format(fname), 3)
  end
  return self.sched
end

--- async.scheduler() -> a scheduler for an outside event loop to drive:
-- s:spawn(fn, ...), s:fd(), s:step(), s:close()
function async.scheduler()
  return setmetatable({ sched = new_scheduler(), closed = false }, Scheduler)
end

--- s:spawn(fn, ...) -> Task: a new task, run at the next step
function Scheduler:spawn(fn, ...)
  local s = check_scheduler(self, "spawn")
  if not callable(fn) then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local task = new_task(s, fn, ...)
  s.port:poke() -- its fd becomes readable: the loop steps
  return task
end

--- s:fd() -> a file descriptor, readable while the scheduler has work for
-- step (a task posted, spawned or woken); poll it for reading
function Scheduler:fd()
  return check_scheduler(self, "fd").port:fd()
end

--- s:step() -> seconds until the next timer (nil: none), tasks left:
-- runs every task that can run now and returns without waiting
function Scheduler:step()
  local s = check_scheduler(self, "step")
  if active ~= nil then
    error("step cannot be called while a scheduler runs in this state", 2)
  end
  if not self.holds then -- the wrappers stand in place until close
    self.holds = true
    hold()
  end
  active = s
  local ok, err = pcall(drive, s)
  active = nil
  if self.closed and self.holds then -- closed by one of its tasks
    self.holds = false
    let_go()
  end
  act(nil) -- even if an error cut a task's turn short, no task acts now
  if not ok then
    error(err, 0)
  end
  local d = next_deadline(s)
  if d ~= nil then
    d = d - monotonic()
    if d < 0 then
      d = 0
    end
  end
  return d, s.ntasks
end

--- s:tasks() -> how many tasks have not ended
function Scheduler:tasks()
  return check_scheduler(self, "tasks").ntasks
end

--- s:close(): end the scheduler; its tasks that have not ended never run
-- again, and their HTTP requests are cancelled
function Scheduler:close()
  if getmetatable(self) ~= Scheduler then
    error("calling 'close' on bad self (threading.async.Scheduler expected)", 2)
  end
  if not self.closed then
    self.closed = true
    close_scheduler(self.sched)
  end
  -- closed by one of its own tasks: the wrappers stay until the step ends,
  -- so that the task's calls until then still suspend it
  if self.holds and active ~= self.sched then
    self.holds = false
    let_go()
  end
end

function Scheduler:__tostring()
  return ("threading.async.Scheduler (%s)"):format(self.closed and "closed"
    or (self.sched.ntasks .. " tasks"))
end

-- async._daemon(fn, ...) -> Task: a task of the running scheduler that does
-- not keep async.run waiting: run returns once every other task has ended,
-- and a daemon still blocked then never runs again (Future callbacks run in
-- one, see pool.lua). nil outside a task.
function async._daemon(fn, ...)
  local me = current_task()
  if me == nil then
    return nil
  end
  local task = new_task(me.sched, fn, ...)
  task.daemon = true
  me.sched.ntasks = me.sched.ntasks - 1
  return task
end

--- async.current() -> the calling task, or nil
function async.current()
  return current_task()
end

-- async._polls() -> how many times the running scheduler has retried a
-- blocked task's call (for the specs: a change must not wake every task).
function async._polls()
  return active and active.polls
end

-- ------------------------------------------------------------ C calls

local getinfo = debug.getinfo
local this_source = getinfo(1, "S").source

-- "file:line: " of the first Lua frame outside this file (the user's call).
local function where()
  local level = 3
  while true do
    local info = getinfo(level, "Sl")
    if info == nil then
      return ""
    end
    if info.source ~= this_source and info.currentline and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
    level = level + 1
  end
end

-- Call a C function on behalf of the user. An argument error reads as if
-- the user had called it directly: `method` functions count their
-- arguments from after self, as a method call does.
local function c_fail(fname, method, err)
  if type(err) == "string" then
    local n, why = err:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
    if n then
      n = tonumber(n) - (method and 1 or 0)
      if n == 0 then
        err = ("calling '%s' on bad self (%s)"):format(fname, why)
      else
        err = ("bad argument #%d to '%s' (%s)"):format(n, fname, why)
      end
      err = where() .. err
    end
  end
  error(err, 0)
end

local function c_pass(fname, method, fn, ...)
  local r = pack(pcall(fn, ...))
  if r[1] then
    return unpack(r, 2, r.n)
  end
  c_fail(fname, method, r[2])
end

-- c_pass for a function that returns one value
local function c_pass1(fname, method, fn, ...)
  local ok, v = pcall(fn, ...)
  if ok then
    return v
  end
  c_fail(fname, method, v)
end

--- async.sleep(seconds): suspend the calling task (threading.sleep outside one)
local c_sleep = threading.sleep
-- The calling task sleeps t seconds; 0 lets the other tasks run.
local function task_sleep(t)
  if t == 0 then
    yield()
  else
    block(nil, t)
  end
end
function async.sleep(seconds)
  local ok, t = timeout_arg(seconds)
  if current_task() == nil or not ok or seconds == nil then
    return c_pass("sleep", false, c_sleep, seconds)
  end
  task_sleep(t)
end

--- async.pcall(fn, ...): pcall in which fn may still await. On Lua 5.1 a
-- coroutine cannot yield across pcall: this one runs fn in a coroutine of
-- its own and passes its requests on to the scheduler.
-- Where pcall itself can yield (Lua 5.2 and later, LuaJIT), it is pcall.
local pcall_yields = coroutine.wrap(function()
  return pcall(yield, true)
end)()
function async.pcall(fn, ...)
  local me = current_task()
  if me == nil or pcall_yields then
    return pcall(fn, ...)
  end
  local co = create(function(...)
    return fn(...)
  end)
  task_of[co] = me
  local r = pack(resume(co, ...))
  while true do
    if costatus(co) == "dead" then
      task_of[co] = nil
      return unpack(r, 1, r.n)
    end
    r = pack(resume(co, yield(unpack(r, 2, r.n))))
  end
end

-- The pool behind to_thread: one per state, made at the first call, sized
-- as Pool's default (Python's default executor: min(32, cpus + 4)).
local executor

--- async.to_thread(fn, ...) -> fn's results
-- Runs fn(...) in a worker thread and waits for it: inside a task only
-- the task waits, so any blocking call (file I/O, os.execute, a C module)
-- becomes coroutine-safe. fn and its arguments are copied to the worker
-- and its results back, as for Pool:submit. Raises fn's error.
function async.to_thread(fn, ...)
  if not callable(fn) then
    error("bad argument #1 to 'to_thread' (function expected, got " .. type(fn) .. ")", 2)
  end
  if executor == nil then
    executor = threading.Pool({ name = "to_thread" })
  end
  local fut = c_pass("to_thread", true, executor.submit, executor, fn, ...)
  local r = pack(fut:result())
  if r[1] then
    return unpack(r, 2, r.n)
  end
  error(r[2], 0)
end

-- ------------------------------------------------------------ halves

--[[
The halves of a task's calls that wait (task.c): each gets the C method
that tries without waiting, the object, the timeout (nil: none) and what
its kind needs, and suspends the task until the try succeeds. On Lua 5.2+
the C methods call them (threading._defer registers them); on 5.1 and
LuaJIT the wrappers of threading.async.wrappers do, after their own try.
]]
local halves = {}

-- Wait in the calling task until poll(pa, pb, pc) is true or the timeout
-- passes.
local function await_poll(poll, timeout, watch, kind, pa, pb, pc)
  if poll(pa, pb, pc) then
    return true
  end
  if timeout == 0 then
    return false
  end
  return (block(poll, timeout, watch, kind, nil, pa, pb, pc))
end

-- A non-blocking try: try(self, false) (acquire, get).
local function try_now(try, self)
  return try(self, false)
end

-- TASK_ACQUIRE: Lock, RLock, Condition, Semaphore, BoundedSemaphore
function halves.acquire(try, self, t)
  return (block(try_now, t, self, TAKE, nil, try, self))
end

do -- Condition
  local cm = rawget(registry["threading.Condition"], "methods")
  local c_enlist = rawget(cm, "_enlist")
  -- Enlist in the condition's queue of waiters and release the lock (at
  -- once, in C: no notify can slip in between), wait until a notify picks
  -- this wait or the timeout passes, and take the lock back at the depth it
  -- had. A task cancelled after a notify picked it passes that notify on. A
  -- cancellation that comes while it takes the lock back waits until it has
  -- it and is raised then, as asyncio does.
  local function task_wait(self, t, fname)
    local me = current_task()
    local ticket = c_pass1(fname, true, c_enlist, self, me.sched.port, me.token)
    me.ticket = ticket -- its scheduler's close leaves the queue for it
    local ok, err = async.pcall(await_poll, ticket.notified, t, DIRECT, nil, ticket)
    me.ticket = nil
    local notified = ticket:leave(not ok)
    if not ticket:relock() then
      block(ticket.relock, nil, self, TAKE, true, ticket)
    end
    if ok and me.cancel_requested then
      me.cancel_requested = false
      me.cancelled_by_us = true
      ok, err = false, "cancelled"
    end
    if not ok then
      error(err, 0)
    end
    return notified
  end
  -- Condition:wait_for's loop, once the arguments and the lock are checked
  local function task_wait_for(self, predicate, t, fname)
    local deadline = t and monotonic() + t
    local v = predicate()
    while not v do
      local left
      if deadline then
        left = deadline - monotonic()
        if left <= 0 then
          break
        end
      end
      task_wait(self, left, fname)
      v = predicate()
    end
    return v
  end
  halves.cond_wait, halves.cond_wait_for = task_wait, task_wait_for
  -- TASK_CONDITION: wait (no predicate) and wait_for, which C has checked
  function halves.condition(_, self, t, predicate)
    if predicate == nil then
      return task_wait(self, t, "wait")
    end
    return task_wait_for(self, predicate, t, "wait_for")
  end
end

do -- Event
  local c_sets = rawget(rawget(registry["threading.Event"], "methods"), "_sets")
  -- TASK_EVENT_WAIT: try is is_set; sets the count seen when the wait
  -- began (a set since then counts, even if cleared at once)
  local function set_since(try, self, sets)
    return try(self) or c_sets(self) ~= sets
  end
  function halves.event_wait(try, self, t, sets)
    return await_poll(set_since, t, self, nil, try, self, sets)
  end
end

-- The waiting half of a task's get or put: the task waits until its try
-- gives something else than nil, `busy` (an item, true; or nil and why
-- not, a shutdown), and gets that; nil, busy once the timeout passes.
local function tried(busy, x, w)
  if x ~= nil then
    return true, x
  elseif w == busy then
    return false
  end
  return true, nil, w
end
local function got_or(busy, got, v, why)
  if not got then
    return nil, busy
  elseif v ~= nil then
    return v
  end
  return nil, why
end
local function try_get(try, self)
  return tried("empty", try(self, false))
end
local function try_put(try, self, item)
  return tried("full", try(self, item, false))
end

-- TASK_GET and TASK_PUT: the queues
function halves.get(try, self, t)
  return got_or("empty", block(try_get, t, self, TAKE, nil, try, self))
end
function halves.put(try, self, t, item)
  return got_or("full", block(try_put, t, self, ROOM, nil, try, self, item))
end
-- TASK_ITER: a queue iterator's get (try: the queue's get); gives the
-- item, or nil once the queue is shut down or the timeout passes
function halves.iter(try, self, t)
  return (halves.get(try, self, t))
end

-- TASK_DONE: Future:result and :exception, Thread:join, a queue's join.
-- try is the method: try(self, 0) answers nil, "timeout" until the object
-- is done, and then what the call gives. `kind` is what to watch the
-- object for (ANY, DONE).
local function ended(...)
  local a, b = ...
  if a == nil and b == "timeout" then
    return false
  end
  return true, ...
end
local function try_done(try, self)
  return ended(try(self, 0))
end
local function done_or_timeout(got, ...)
  if not got then
    return nil, "timeout"
  end
  return ...
end
function halves.done(try, self, t, kind)
  return done_or_timeout(block(try_done, t, self, kind, nil, try, self))
end

do -- Barrier: a task arrives with a ticket that its scheduler watches
  local c_arrive = rawget(rawget(registry["threading.Barrier"], "methods"), "_arrive")
  -- t: the timeout given (nil: the barrier's default, which arrive tells)
  local function task_wait(self, t, fname)
    local tk, default = c_pass(fname, true, c_arrive, self)
    if tk == nil and default == "busy" then
      -- the last generation's action runs: arrive once it has ended
      await_poll(function()
        tk, default = c_arrive(self)
        return not (tk == nil and default == "busy")
      end, nil, self)
    end
    if type(tk) == "number" then
      return tk -- the last arrival: released at once
    elseif tk == nil then
      return nil, default -- broken
    end
    if t == nil then
      t = default
    end
    local me = current_task()
    me.ticket = tk -- its scheduler's close breaks the barrier for it
    local pok, err = async.pcall(await_poll, function()
      return tk:outcome() ~= "waiting"
    end, t, self)
    me.ticket = nil
    if not pok then
      tk:leave(true) -- a cancelled task breaks the barrier
      error(err, 0)
    end
    local state, index = tk:outcome()
    if state == "waiting" then
      -- timed out: break it, unless the action decides the outcome
      state, index = tk:leave(false)
      if state == "releasing" then
        await_poll(function()
          return tk:outcome() ~= "waiting"
        end, nil, self)
        state, index = tk:outcome()
      end
    end
    if state == "released" then
      return index
    end
    return nil, "broken"
  end
  halves.barrier_wait = task_wait
  -- TASK_BARRIER: wait, whose arguments C has checked
  function halves.barrier(_, self, t)
    return task_wait(self, t, "wait")
  end
end

-- Pool:shutdown(wait) and the end of a `local pool <close>` scope wait for
-- the workers to leave (the pool announces each worker that leaves).
function halves.workers_left(self)
  await_poll(function()
    return self.workers == 0
  end, nil, self)
end
-- TASK_SHUTDOWN: C has shut the pool down; try(self, true) joins
function halves.shutdown(try, self)
  halves.workers_left(self)
  return try(self, true)
end

-- TASK_SELECT: threading.select; try is one pass over the list, which
-- gives nothing while no case is ready; objects are what to watch
function halves.select(try, list, t, objects)
  local ok, r = block(function()
    local x = pack(try(list))
    if x.n > 0 then
      return true, x
    end
    return false
  end, t, many(objects))
  if not ok then
    return nil, "timeout"
  end
  return unpack(r, 1, r.n)
end

-- Does what threading.wait(futures, 0, how) gave satisfy `how`?
local function wait_satisfied(done, not_done, how)
  if #not_done == 0 then
    return true
  end
  if how == "first_completed" then
    return #done > 0
  elseif how == "first_exception" then
    for i = 1, #done do
      local f = done[i]
      if not f:cancelled() and f:exception(0) ~= nil then
        return true
      end
    end
  end
  return false
end

-- TASK_WAIT: threading.wait; try(futures, 0, how) gives done, not_done
-- at once; the task watches the futures not done
local function wait_poll(try, futures, how)
  local done, not_done = try(futures, 0, how)
  return wait_satisfied(done, not_done, how), done, not_done
end
function halves.wait(try, futures, t, how)
  local ok, done, not_done = wait_poll(try, futures, how)
  if ok or t == 0 then
    return done, not_done
  end
  local got, d, nd = block(wait_poll, t, many(not_done), nil, nil, try, futures, how)
  if got then
    return d, nd
  end
  return try(futures, 0, how)
end

-- TASK_SLEEP: threading.sleep; sleep(0) lets the other tasks run
function halves.sleep(_, _, t)
  task_sleep(t)
end

-- TASK_NEXT: as_completed's step, a completion set's next (future.c);
-- try(set, 0) gives the index of a future that ended, nil once every one
-- was handed out, nil, "timeout" until then. The set's port relays each
-- end of one of its futures to the scheduler's, with the task's token,
-- while the task waits: one retry per end.
local function next_poll(try, set)
  local i, why = try(set, 0)
  if i ~= nil or why == nil then
    return true, i
  end
  return false
end
function halves.next(try, set, t)
  local me = current_task()
  set:_relay(me.sched.port, me.token)
  local ok, got, i = async.pcall(block, next_poll, t, DIRECT, nil, nil, try, set)
  set:_relay()
  if not ok then
    error(got, 0)
  elseif not got then
    return nil, "timeout"
  end
  return i
end

-- Future:result itself (a wrapper may stand in the methods table)
local c_future_result = rawget(rawget(registry["threading.Future"], "methods"), "result")

if defer then
  defer(TASK_ACQUIRE, halves.acquire)
  defer(TASK_GET, halves.get)
  defer(TASK_PUT, halves.put)
  defer(TASK_EVENT_WAIT, halves.event_wait)
  defer(TASK_DONE, halves.done)
  defer(TASK_CONDITION, halves.condition)
  defer(TASK_BARRIER, halves.barrier)
  defer(TASK_ITER, halves.iter)
  defer(TASK_SHUTDOWN, halves.shutdown)
  defer(TASK_SELECT, halves.select)
  defer(TASK_WAIT, halves.wait)
  defer(TASK_SLEEP, halves.sleep)
  defer(TASK_NEXT, halves.next)
  -- fut:await([timeout]) and t:await([timeout]): Future:result and
  -- Thread:join, which suspend only the calling task by themselves
  threading._extend("threading.Future", { await = c_future_result })
  threading._extend("threading.Thread", {
    await = rawget(rawget(registry["threading.Thread"], "methods"), "join"),
  })
else
  -- Lua 5.1 and LuaJIT: a wrapper for each blocking method
  local function in_task()
    return active ~= nil and task_of[running()] ~= nil
  end
  require("threading.async.wrappers")({
    threading = threading, registry = registry, halves = halves, install = install,
    current_task = current_task, in_task = in_task, pcall = async.pcall,
    c_pass = c_pass, c_pass1 = c_pass1, c_fail = c_fail, where = where,
    timeout_arg = timeout_arg, callable = callable, pack = pack, DONE = DONE,
    sleep = async.sleep,
  })
end

do -- Pool's __close
  local mt = registry["threading.Pool"]
  local c_close = rawget(mt, "__close")
  if c_close then
    -- Lua 5.4 lets __close yield when the scope ends normally, not while
    -- an error unwinds it (then the C close waits, blocking the thread);
    -- shutdown suspends a task there
    mt.__close = function(self, err)
      if err ~= nil or current_task() == nil or self._in_worker then
        return c_close(self, err)
      end
      self:shutdown()
    end
  end
end


do -- threading.http: a task's request suspends only the task
  -- In async.run the request runs on this state's driver, in this thread
  -- (await_driven); under a stepped scheduler it runs on the HTTP module's
  -- I/O thread (src/http_io.c) and completes a future, which the task
  -- awaits (await_request). A task that leaves the wait early (cancelled,
  -- or its scheduler ends) cancels the request, which frees its handle and
  -- connection at once.
  local guard
  local function await_request(task, fut)
    -- the guard cancels the request if this state closes first (a
    -- cancelled thread runs no more Lua, but its finalizers run)
    task.request, task.request_guard = fut, guard(fut)
    local r = pack(async.pcall(fut.await, fut))
    task.request, task.request_guard = nil, nil
    if not r[1] then
      fut:cancel()
      error(r[2], 0)
    end
    if not r[2] then
      return nil, "request cancelled", "cancelled"
    end
    return unpack(r, 3, r.n)
  end

  -- The driver of scheduler s's requests; nil for a stepped scheduler (an
  -- event loop drives it and never pumps: its requests go to the I/O
  -- thread).
  local function driver_of(s)
    if not s.pumps then
      return nil
    end
    if http_driver == nil then
      http_driver = new_http_driver()
    end
    s.http = http_driver
    return http_driver
  end

  -- A request on this scheduler's driver: the task blocks with no watch
  -- and no poll, and the loop wakes it with the results when the driver
  -- reports the request ended (sleep_in). Leaving early cancels the
  -- request.
  local c_done = rawget(rawget(registry["threading.Future"], "methods"), "done")
  local function await_driven(task, fut)
    if c_done(fut) then -- refused before it was sent
      return select(2, c_future_result(fut))
    end
    task.request, task.driven = fut, true
    -- what get returns: the response, or nil, message, kind
    local ok, err, r, msg, kind = async.pcall(block, nil, nil, DIRECT)
    task.request, task.driven = nil, nil
    if not ok then
      fut:cancel()
      task.sched.http.settle() -- its handle and connection go now
      error(err, 0)
    end
    if r == nil and msg == nil then -- woken without its results (see sleep_in)
      local done, v, m, k = c_future_result(fut)
      if not done then
        return nil, v, "error" -- its report was lost, or it stayed with the parent at fork()
      end
      return v, m, k
    end
    if r == nil then
      return nil, msg, kind
    end
    return r
  end

  local function adopt(http)
    if rawget(http, "_async") then
      return
    end
    local raw = { get = http.get, request = http.request }
    local get_async, request_async = http.get_async, http.request_async
    guard = http._guard
    new_http_driver = http._driver
    http._async = true
    -- Two wrappers written out, not made by one function: outside a task
    -- each calls raw.get or raw.request, a field with a constant name, from
    -- which Lua names the C function in its argument errors ('get'); a
    -- local or a computed key would name it otherwise.
    --- http.get: inside a task, suspends only the task
    http.get = function(...)
      local me = current_task()
      if me == nil then
        return raw.get(...)
      end
      local d = driver_of(me.sched)
      if d ~= nil then
        return await_driven(me, c_pass1("get", false, d.get, me.token, ...))
      end
      return await_request(me, c_pass("get", false, get_async, ...))
    end
    --- http.request: inside a task, suspends only the task
    http.request = function(...)
      local me = current_task()
      if me == nil then
        return raw.request(...)
      end
      local d = driver_of(me.sched)
      if d ~= nil then
        return await_driven(me, c_pass1("request", false, d.request, me.token, ...))
      end
      return await_request(me, c_pass("request", false, request_async, ...))
    end
  end
  -- whichever of the two modules a state loads first, the other adopts it
  async._adopt_http = adopt
  local loaded = package.loaded["threading.http"]
  if type(loaded) == "table" then
    adopt(loaded)
  end
end

async.Task = Task
return async
