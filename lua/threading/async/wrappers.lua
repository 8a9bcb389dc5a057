--- threading.async.wrappers: the tasks' wrappers of the blocking methods,
-- for Lua 5.1 and LuaJIT.
--
-- There a C function cannot continue after a yield, so a blocking C method
-- cannot suspend the task that calls it, as it does on Lua 5.2+ (task.c).
-- Instead, each blocking method gets a wrapper in Lua that tries the
-- call's non-blocking form and, if the call must wait, calls the same half
-- of threading.async that the C methods call on 5.2+ (acquire, get, put,
-- ...). threading.async requires this module on those versions only, and
-- calls it with its internals (`a`); the wrappers are installed through
-- a.install, which swaps them into the methods tables while a scheduler
-- may run tasks (async.lua: hold, let_go).
--
-- A wrapper called by anything but a task (a coroutine that a task made,
-- the event loop's code between steps) calls the C method, and an
-- argument error reads as the C method's would (a.c_pass): outside tasks
-- nothing changes, not even an error message. threading.sleep, wait and
-- select, and as_completed's step, are replaced in the module table the
-- same way.
local error, pcall, rawget, type = error, pcall, rawget, type
local unpack = table.unpack or unpack

return function(a)
  local threading, registry, halves = a.threading, a.registry, a.halves
  local install, current_task, in_task = a.install, a.current_task, a.in_task
  local c_pass, c_pass1, c_fail, where = a.c_pass, a.c_pass1, a.c_fail, a.where
  local timeout_arg, callable, pack = a.timeout_arg, a.callable, a.pack

  -- ([blocking[, timeout]]) or (timeout), as lock.c and queue.c read them:
  -- returns ok, blocking, timeout (ok false: let C raise).
  local function block_args(blocking, timeout)
    if type(blocking) == "number" then
      local ok, t = timeout_arg(blocking)
      return ok, true, t
    end
    if blocking ~= nil and type(blocking) ~= "boolean" then
      return false
    end
    if blocking == false then
      return timeout == nil, false, nil
    end
    local ok, t = timeout_arg(timeout)
    return ok, true, t
  end

  -- Is this a task's call, with ([blocking[, timeout]]) that are good and
  -- ask it to wait if it must? Then true and the timeout (nil: none); else
  -- false, and the C method takes the call (and raises on bad arguments).
  local function task_waits(blocking, timeout)
    if not in_task() then
      return false
    elseif blocking == nil and timeout == nil then -- the common call
      return true, nil
    end
    local ok, blocks, t = block_args(blocking, timeout)
    return ok and blocks and t ~= 0, t
  end

  -- Lock and Semaphore: acquire(false) is the non-blocking form. An RLock,
  -- and a Condition's lock, belong to the task that took them: C compares
  -- their owner with the task its scheduler runs (port.c), so that release,
  -- re-entry and notify need no wrapper.
  local acquire_half = halves.acquire
  local function make_acquire(c_acquire, fname)
    return function(self, blocking, timeout)
      local waits, t = task_waits(blocking, timeout)
      if not waits then
        return c_pass(fname, true, c_acquire, self, blocking, timeout)
      end
      -- the common case first, with nothing made for it: the lock is free
      local pok, got = pcall(c_acquire, self, false)
      if not pok then
        c_fail(fname, true, got)
      elseif got then
        return true
      end
      return acquire_half(c_acquire, self, t)
    end
  end

  -- lock:with(fn, ...) inside a task: the call is protected with
  -- async.pcall, so fn may block (yield).
  local apcall = a.pcall
  local function make_with(c_with)
    return function(self, fn, ...)
      if current_task() == nil then
        return c_with(self, fn, ...)
      end
      self:acquire()
      local r = pack(apcall(fn, ...))
      self:release()
      if not r[1] then
        error(r[2], 0)
      end
      return unpack(r, 2, r.n)
    end
  end

  for _, name in ipairs({ "threading.Lock", "threading.RLock", "threading.Condition",
    "threading.Semaphore", "threading.BoundedSemaphore" }) do
    install(name, { acquire = make_acquire, with = make_with })
  end

  -- A wait(timeout) whose half runs the whole wait: half(self, t, fname)
  local function make_timed(half)
    return function(c_wait, fname)
      return function(self, timeout)
        local ok, t = timeout_arg(timeout)
        if current_task() == nil or not ok then
          return c_pass(fname, true, c_wait, self, timeout)
        end
        return half(self, t, fname)
      end
    end
  end

  local cond_wait_for = halves.cond_wait_for
  local cm = rawget(registry["threading.Condition"], "methods")
  local c_is_owned = rawget(cm, "_is_owned")
  install("threading.Condition", {
    wait = make_timed(halves.cond_wait),
    wait_for = function(c_wait_for, fname)
      return function(self, predicate, timeout)
        local ok, t = timeout_arg(timeout)
        if current_task() == nil or not ok or not callable(predicate) then
          return c_pass(fname, true, c_wait_for, self, predicate, timeout)
        end
        if not c_pass1(fname, true, c_is_owned, self) then
          error(("%scalling '%s' on bad self (cannot wait on un-acquired lock)"):format(
            where(), fname), 0)
        end
        return cond_wait_for(self, predicate, t, fname)
      end
    end,
  })

  local event_half = halves.event_wait
  local em = rawget(registry["threading.Event"], "methods")
  local c_is_set, c_sets = rawget(em, "is_set"), rawget(em, "_sets")
  install("threading.Event", {
    wait = function(c_wait, fname)
      return function(self, timeout)
        local ok, t = true, nil
        if timeout ~= nil then
          ok, t = timeout_arg(timeout)
        end
        if not ok or not in_task() then
          return c_pass(fname, true, c_wait, self, timeout)
        end
        -- the common case first, with nothing made for it: it is set
        local pok, set = pcall(c_is_set, self)
        if not pok then
          c_fail(fname, true, set)
        elseif set or t == 0 then
          return set
        end
        return event_half(c_is_set, self, t, c_sets(self))
      end
    end,
  })

  -- The wrapper of a method whose half is done_half (Future:result and
  -- :exception, Thread:join, a queue's join): its call with timeout 0
  -- answers at once (the answer, a timeout, or a misuse's error).
  local done_half = halves.done
  local function make_done(kind)
    return function(c_fn, fname)
      return function(self, timeout)
        local ok, t = timeout_arg(timeout)
        if current_task() == nil or not ok then
          return c_pass(fname, true, c_fn, self, timeout)
        end
        local r = pack(c_pass(fname, true, c_fn, self, 0))
        if not (r[1] == nil and r[2] == "timeout") or t == 0 then
          return unpack(r, 1, r.n)
        end
        return done_half(c_fn, self, t, kind)
      end
    end
  end

  -- Queues: get(false) and put(item, false) are the non-blocking forms.
  local get_half, put_half = halves.get, halves.put
  local queue_makers = {
    get = function(c_get, fname)
      return function(self, blocking, timeout)
        local waits, t = task_waits(blocking, timeout)
        if not waits then
          return c_pass(fname, true, c_get, self, blocking, timeout)
        end
        -- what get returns: the item alone, or nil and why; the common
        -- case (an item is there) first, with nothing made for it
        local pok, item, why = pcall(c_get, self, false)
        if not pok then
          c_fail(fname, true, item)
        elseif item ~= nil then
          return item
        elseif why ~= "empty" then
          return nil, why
        end
        return get_half(c_get, self, t)
      end
    end,
    put = function(c_put, fname)
      return function(self, item, blocking, timeout)
        local waits, t = task_waits(blocking, timeout)
        if not waits then
          return c_pass(fname, true, c_put, self, item, blocking, timeout)
        end
        -- what put returns: true alone, or nil and why; the common case
        -- (there is room) first, with nothing made for it
        local pok, done, why = pcall(c_put, self, item, false)
        if not pok then
          c_fail(fname, true, done)
        elseif done then
          return done
        elseif why ~= "full" then
          return done, why
        end
        return put_half(c_put, self, t, item)
      end
    end,
    join = make_done(a.DONE),
    iter = function(c_iter, fname)
      return function(self, timeout)
        if current_task() == nil then
          return c_pass(fname, true, c_iter, self, timeout)
        end
        c_pass(fname, true, c_iter, self, timeout) -- checks the arguments
        return function()
          local item = self:get(true, timeout)
          return item
        end
      end
    end,
  }
  for _, name in ipairs({ "threading.Queue", "threading.LifoQueue",
    "threading.PriorityQueue", "threading.SimpleQueue" }) do
    install(name, queue_makers)
  end

  -- fut:await([timeout]) and t:await([timeout]): Future:result and
  -- Thread:join that suspend only the calling task
  local make_result, make_join = make_done(nil), make_done(nil)
  install("threading.Future", { result = make_result, exception = make_result })
  install("threading.Thread", { join = make_join })
  local c_result = rawget(rawget(registry["threading.Future"], "methods"), "result")
  local c_join = rawget(rawget(registry["threading.Thread"], "methods"), "join")
  threading._extend("threading.Future", { await = make_result(c_result, "await") })
  threading._extend("threading.Thread", { await = make_join(c_join, "await") })

  install("threading.Barrier", { wait = make_timed(halves.barrier_wait) })

  -- the module's functions that wait
  threading.sleep = a.sleep
  local c_wait, wait_half = threading.wait, halves.wait
  --- threading.wait: inside a task, suspends only the task
  threading.wait = function(futures, timeout, how)
    local ok, t = timeout_arg(timeout)
    if current_task() == nil or not ok then
      return c_pass("wait", false, c_wait, futures, timeout, how)
    end
    c_pass("wait", false, c_wait, futures, 0, how) -- its argument errors
    return wait_half(c_wait, futures, t, how)
  end
  --- as_completed's step (looked up at each step): inside a task,
  -- suspends only the task
  local c_next_completed, next_half = threading._next_completed, halves.next
  threading._next_completed = function(set, timeout)
    local ok, t = timeout_arg(timeout)
    if current_task() == nil or not ok then
      return c_next_completed(set, timeout)
    end
    local i, why = set:next(0)
    if i ~= nil or why == nil or t == 0 then
      return i, why
    end
    return next_half(set.next, set, t)
  end
  --- threading.select: inside a task, suspends only the task (it watches
  -- every object of the list, as threading.wait watches its futures)
  local c_select, select_check, select_objects, select_try =
    threading.select, threading._select_check, threading._select_objects,
    threading._select_try
  local select_half = halves.select
  threading.select = function(list, timeout)
    if current_task() == nil then
      return c_select(list, timeout)
    end
    select_check(list, timeout, 2)
    local r = pack(select_try(list))
    if r.n > 0 then
      return unpack(r, 1, r.n)
    elseif timeout == 0 then
      return nil, "timeout"
    end
    return select_half(select_try, list, timeout, select_objects(list))
  end

  local workers_left = halves.workers_left
  install("threading.Pool", {
    shutdown = function(c_shutdown, fname)
      return function(self, wait, cancel_futures)
        -- from one of its own workers, C refuses to wait before anything
        if current_task() == nil or wait == false or self._in_worker then
          return c_pass(fname, true, c_shutdown, self, wait, cancel_futures)
        end
        c_pass(fname, true, c_shutdown, self, false, cancel_futures)
        workers_left(self)
        return c_pass(fname, true, c_shutdown, self, true)
      end
    end,
  })
end
