--- The Lua side of pools: Pool:map and threading.as_completed.
-- Both are built on the C primitives (submit, Future:result, threading.wait,
-- the completion sets of future.c), so inside a threading.async task they
-- yield instead of blocking.
return function(threading)
  local error, type = error, type
  local floor, huge = math.floor, math.huge

  local function callable(f)
    if type(f) == "function" then
      return true
    end
    local mt = getmetatable(f)
    return type(mt) == "table" and mt.__call ~= nil
  end

  local function argerror(n, fname, msg)
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
  end

  --- pool:map(fn, list[, chunksize]) -> results (a list with field n)
  -- Calls fn(item) for each item of list in the pool, `chunksize` items per
  -- task, and returns the first result of each call in the order of the list
  -- (list.n, when present, counts the items, so they may include nils).
  -- Raises the error of the first item (in list order) that failed; the tasks
  -- not started yet are then cancelled.
  local function map(pool, fn, list, chunksize)
    if not callable(fn) then
      argerror(1, "map", "function expected, got " .. type(fn))
    end
    if type(list) ~= "table" then
      argerror(2, "map", "table expected, got " .. type(list))
    end
    if chunksize == nil then
      chunksize = 1
    elseif type(chunksize) ~= "number" or chunksize < 1 or chunksize ~= floor(chunksize)
        or chunksize == huge then
      argerror(3, "map", "chunksize must be a positive integer")
    end
    local n = list.n or #list
    local futures = {}
    local ok, err = pcall(function()
      -- fn is encoded once for the whole map; each chunk's items travel as
      -- slots and its results come back as slots, without a table copied
      -- either way
      local mapfn = pool:_map_fn(fn)
      for first = 1, n, chunksize do
        local last = first + chunksize - 1
        if last > n then
          last = n
        end
        futures[#futures + 1] = pool:_submit_chunk(mapfn, list, first, last)
      end
    end)
    if not ok then
      for i = 1, #futures do
        futures[i]:cancel()
      end
      error(err, 0)
    end
    local results, at = nil, 0
    for k = 1, #futures do
      local f = futures[k]
      local done, value = f:result()
      if not done then
        for j = k + 1, #futures do
          futures[j]:cancel()
        end
        error(value, 0)
      end
      local count
      count, results = f:_into(results, at, n)
      at = at + count
    end
    if results == nil then -- an empty list
      results = {}
    end
    results.n = n
    return results
  end

  threading._extend("threading.Pool", { map = map })

  -- ------------------------------------------------------ done callbacks

  --[[
  A callback is a Lua function of this state, and no Lua runs in a state
  but on its own thread: a future completed by a pool worker, the HTTP I/O
  thread or another thread cannot call it there. So a callback runs in the
  state that added it: at once if the future is done already, else in the
  threading.async scheduler running in this state, from a daemon task that
  waits for the future and then calls the future's callbacks in the order
  they were added (asyncio runs them in the loop's thread the same way).
  ]]
  local callbacks = setmetatable({}, { __mode = "k" }) -- future -> its callbacks
  local stderr = io.stderr

  local function report(fut, err)
    stderr:write(("threading: error in a done callback of %s:\n%s\n")
      :format(tostring(fut), tostring(err)))
  end

  local function call(fut, fn)
    local ok, err = pcall(fn, fut)
    if not ok then
      report(fut, err)
    end
  end

  --- fut:add_done_callback(fn): call fn(fut) once fut is done (at once if
  -- it is); an error of fn is reported on stderr and stops no other
  -- callback. A pending future's callbacks run in this state's
  -- threading.async scheduler: add them from a task.
  local function add_done_callback(fut, fn)
    if fut:done() then -- checks self
      if not callable(fn) then
        argerror(1, "add_done_callback", "function expected, got " .. type(fn))
      end
      call(fut, fn)
      return
    end
    if not callable(fn) then
      argerror(1, "add_done_callback", "function expected, got " .. type(fn))
    end
    local list = callbacks[fut]
    if list ~= nil then
      list[#list + 1] = fn
      return
    end
    local async = package.loaded["threading.async"]
    list = { fn }
    local task = async and async._daemon(function()
      fut:exception() -- suspends this task until fut is done (no results decoded)
      callbacks[fut] = nil
      for i = 1, #list do
        call(fut, list[i])
      end
    end)
    if task == nil then
      error("calling 'add_done_callback' on a pending future outside a threading.async task "
        .. "(its callbacks run in this state's scheduler)", 2)
    end
    callbacks[fut] = list
  end

  --- fut:remove_done_callback(fn) -> how many were removed (callbacks not
  -- run yet that are fn)
  local function remove_done_callback(fut, fn)
    fut:done() -- checks self
    local list, removed = callbacks[fut], 0
    if list ~= nil then
      for i = #list, 1, -1 do
        if list[i] == fn then
          table.remove(list, i)
          removed = removed + 1
        end
      end
    end
    return removed
  end

  threading._extend("threading.Future", {
    add_done_callback = add_done_callback,
    remove_done_callback = remove_done_callback,
  })

  --- threading._next_completed(set, timeout): set:next(timeout), looked up
  -- at each step so that threading.async can suspend only the task
  function threading._next_completed(set, timeout)
    return set:next(timeout)
  end

  --- threading.as_completed(futures[, timeout]) -> iterator over futures
  -- Yields each future of the list once, as it completes (those already done
  -- first). If the timeout (seconds, counted from the call) passes before all
  -- have completed, the iterator raises an error whose message starts with
  -- "timeout", as Python raises TimeoutError.
  function threading.as_completed(futures, timeout)
    if type(futures) ~= "table" then
      argerror(1, "as_completed", "table expected, got " .. type(futures))
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
      argerror(2, "as_completed", "timeout must be a non-negative number")
    end
    local deadline = timeout and threading.monotonic() + timeout
    -- validates and dedupes now, so that misuse raises at the call
    local ready, pending = threading.wait(futures, 0)
    local total, r = #ready + #pending, 1
    -- the futures left are watched once, by a set that hands them out as
    -- they end: each end costs one wake-up, however many are left
    local set = #pending > 0 and threading._completions(pending) or nil
    local handed = #ready
    return function()
      local f = ready[r]
      if f ~= nil then
        r = r + 1
        return f
      end
      if set == nil then
        return nil
      end
      local left
      if deadline then
        left = deadline - threading.monotonic()
        if left < 0 then
          left = 0
        end
      end
      local i, why = threading._next_completed(set, left)
      if i == nil then
        if why == nil then
          set = nil   -- every one handed out: the set can go
          return nil
        end
        error(("timeout (%d of %d futures unfinished)"):format(total - handed, total), 2)
      end
      handed = handed + 1
      return pending[i]
    end
  end
end
