--- threading.select(waitables[, timeout]): wait for the first of several
-- objects that is ready, take it, and return its index and what taking it
-- gave. Queues are ready when they have an item (taken with get), Events
-- when set, Futures when done (their result), Threads when ended (their
-- join), Locks, RLocks and semaphores when they can be acquired (acquired).
-- A send case, the plain table { queue, item }, is ready when the queue
-- has room (the item is put), as Go's `case ch <- v`.
--
-- The objects are tried in order, so when several are ready the first one
-- listed wins, and only it is taken. A thread waits on a port of its own
-- (port.c): it watches every object, tries them all, then sleeps until one
-- of them changes and tries that one again. Inside a task of
-- threading.async only the task waits (async.lua wraps this function).
return function(threading)
  local error, getmetatable, pairs, select, setmetatable, type =
    error, getmetatable, pairs, select, setmetatable, type
  local registry = debug.getregistry()
  local monotonic = threading.monotonic
  local new_port = threading._port
  local unpack = table.unpack or unpack

  local function pack(...)
    return { n = select("#", ...), ... }
  end

  local function take_item(q)
    local item, why = q:get(false)
    if item ~= nil then
      return true, item
    elseif why == "empty" then
      return false
    end
    return true, nil, why -- "shutdown": ready, as a closed channel is
  end

  -- a send case { q, item }: put without waiting
  local function take_send(case)
    local ok, why = case[1]:put(case[2], false)
    if ok then
      return true, true
    elseif why == "full" then
      return false
    end
    return true, nil, why -- "shutdown"
  end

  local function take_lock(l)
    if l:acquire(false) then
      return true, true
    end
    return false
  end

  local takers = {
    ["threading.Queue"] = take_item,
    ["threading.LifoQueue"] = take_item,
    ["threading.PriorityQueue"] = take_item,
    ["threading.SimpleQueue"] = take_item,
    ["threading.Lock"] = take_lock,
    ["threading.RLock"] = take_lock,
    ["threading.Semaphore"] = take_lock,
    ["threading.BoundedSemaphore"] = take_lock,
    ["threading.Event"] = function(e)
      if e:is_set() then
        return true, true
      end
      return false
    end,
    ["threading.Future"] = function(f)
      if f:done() then
        return true, f:result(0)
      end
      return false
    end,
    ["threading.Thread"] = function(t)
      local r = pack(t:join(0))
      if r[1] == nil and r[2] == "timeout" then
        return false
      end
      return true, unpack(r, 1, r.n)
    end,
  }

  -- Each metatable's taker, found once: a type's metatable never changes
  -- in a state, and looking it up by name costs a registry read per type.
  local taker_by_mt = setmetatable({}, { __mode = "k" })

  local function taker_of(v)
    local mt = getmetatable(v)
    if mt == nil then
      return nil
    end
    local take = taker_by_mt[mt]
    if take ~= nil then
      return take
    end
    for name, t in pairs(takers) do
      if registry[name] == mt then
        taker_by_mt[mt] = t
        return t
      end
    end
    return nil
  end

  -- The taker of each waitable, or a standard error naming the bad one.
  local function check(list, timeout, level)
    if type(list) ~= "table" then
      error(("bad argument #1 to 'select' (table expected, got %s)"):format(type(list)), level)
    end
    local n = #list
    if n == 0 then
      error("bad argument #1 to 'select' (no waitables given)", level)
    end
    local take = {}
    for i = 1, n do
      local v = list[i]
      local t = taker_of(v)
      if t == nil and type(v) == "table" and getmetatable(v) == nil
          and taker_of(v[1]) == take_item then
        if v[2] == nil then
          error(("bad argument #1 to 'select' (waitables[%d]: send case { queue, item }"
            .. " without an item)"):format(i), level)
        end
        t = take_send
      end
      if t == nil then
        error(("bad argument #1 to 'select' (waitables[%d]: queue, event, future, thread, "
          .. "lock, semaphore or { queue, item } expected, got %s)"):format(i, type(v)), level)
      end
      take[i] = t
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
      error("bad argument #2 to 'select' (timeout must be a non-negative number)", level)
    end
    return take, n
  end

  -- What to watch for each waitable: itself, or a send case's queue (only
  -- a wait that must sleep asks).
  local function objects(list, take, n)
    local objs = {}
    for i = 1, n do
      objs[i] = take[i] == take_send and list[i][1] or list[i]
    end
    return objs
  end

  -- a taker's answer: nil if not ready, else { i, what taking gave }
  local function answer(i, ok, ...)
    if ok then
      return pack(i, ...)
    end
    return nil
  end

  local function try(list, take, i)
    return answer(i, take[i](list[i]))
  end

  -- One pass over every waitable, in order: the first ready one's results.
  local function try_all(list, take, n)
    for i = 1, n do
      local r = try(list, take, i)
      if r then
        return r
      end
    end
    return nil
  end

  local function wait_ready(port, list, take, n, objs, timeout)
    for i = 1, n do
      port:watch(objs[i], i)
    end
    local r = try_all(list, take, n) -- every watch is armed: nothing is missed
    if r then
      return r
    end
    local deadline = timeout and monotonic() + timeout
    while true do
      local left
      if deadline then
        left = deadline - monotonic()
        if left <= 0 then
          return nil
        end
      end
      local tokens, everything = port:wait(left)
      if everything then
        for i = 1, n do
          port:watch(objs[i], i)
        end
        r = try_all(list, take, n)
        if r then
          return r
        end
      end
      for k = 1, #tokens do
        local i = tokens[k]
        port:watch(objs[i], i) -- a watch fires once: arm it before the try
        r = try(list, take, i)
        if r then
          return r
        end
      end
    end
  end

  -- One port per state, kept between calls: making one costs more than a
  -- select that finds something ready. Closing it drops its watches and
  -- whatever they posted, so the next call starts clean. A call made while
  -- it is in use (a finalizer's select during another's wait) makes its
  -- own.
  local spare

  function threading.select(list, timeout)
    local take, n = check(list, timeout, 3)
    local r = try_all(list, take, n)
    if r == nil and timeout ~= 0 then
      local port = spare or new_port()
      spare = nil
      local ok, got = pcall(wait_ready, port, list, take, n, objects(list, take, n), timeout)
      port:close()
      spare = port
      if not ok then
        error(got, 0)
      end
      r = got
    end
    if r == nil then
      return nil, "timeout"
    end
    return unpack(r, 1, r.n)
  end

  -- for threading.async: check, the objects to watch, and one pass, without
  -- waiting
  threading._select_check = check
  threading._select_objects = objects
  threading._select_try = try_all
end
