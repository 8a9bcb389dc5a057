--- threading.Timer: a Thread that calls a function after a delay unless
-- cancelled first.
--
-- A Timer is a Lua object in front of a real Thread (`timer.thread`): the
-- Thread's fields and methods (name, ident, daemon, status, join, is_alive,
-- ...) are reached through the Timer, except `start`, which returns the
-- Timer, and `cancel`, which stops the wait instead of the thread. The
-- thread waits on the Event `timer.finished` with the delay as its timeout;
-- cancel() sets that Event.
return function(threading)
  local Thread, Event = threading.Thread, threading.Event
  local error, getmetatable, pcall, rawget, setmetatable, tonumber, tostring, type =
    error, getmetatable, pcall, rawget, setmetatable, tonumber, tostring, type

  -- Runs in the timer's own thread (a copy: it sees only its arguments).
  local function body(finished, interval, fn, ...)
    if not finished:wait(interval) and not finished:is_set() then
      return fn(...)
    end
  end

  local methods = {}
  local timer_mt = { __name = "threading.Timer" }
  -- A Timer moves between threads as what it is, a table of handles: its
  -- metatable travels by this name, to the receiver's own Timer class.
  threading._register_class(timer_mt, "threading.Timer")

  -- A Thread method called through a Timer gets the Thread as self; one
  -- forwarding function per method, made on first use.
  local forwarders = setmetatable({}, { __mode = "k" })
  local function forwarder(fn)
    local f = forwarders[fn]
    if f == nil then
      f = function(self, ...)
        if getmetatable(self) == timer_mt then
          self = rawget(self, "thread")
        end
        return fn(self, ...)
      end
      forwarders[fn] = f
    end
    return f
  end

  timer_mt.__index = function(self, key)
    local m = methods[key]
    if m ~= nil then
      return m
    end
    local v = rawget(self, "thread")[key]
    if type(v) == "function" then
      return forwarder(v)
    end
    return v
  end

  timer_mt.__newindex = function(self, key, value)
    rawget(self, "thread")[key] = value
  end

  timer_mt.__tostring = function(self)
    return (tostring(rawget(self, "thread")):gsub("^threading%.Thread", "threading.Timer"))
  end

  --- timer:start() -> timer
  function methods.start(self)
    self.thread:start()
    return self
  end

  --- timer:cancel(): do not call fn if it has not been called yet
  function methods.cancel(self)
    self.finished:set()
  end

  -- A refusal names what the caller passed (fn, args[k]), not the places
  -- they take among the thread's own arguments (finished, interval, fn, ...).
  local function caller_path(err)
    if type(err) ~= "string" then
      return err
    end
    return (err:gsub("^(cannot transfer value at )args%[(%d+)%]", function(prefix, k)
      k = tonumber(k)
      return prefix .. (k == 3 and "fn" or ("args[" .. (k - 3) .. "]"))
    end))
  end

  local function argerror(n, msg)
    error(("bad argument #%d to 'Timer' (%s)"):format(n, msg), 3)
  end

  --- threading.Timer(interval, fn, ...) -> an unstarted Timer
  function threading.Timer(interval, fn, ...)
    if type(interval) ~= "number" then
      argerror(1, "number expected, got " .. type(interval))
    end
    if interval ~= interval or interval < 0 then
      argerror(1, "interval must be a non-negative number")
    end
    local mt = getmetatable(fn)
    if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call ~= nil) then
      argerror(2, "function expected, got " .. type(fn))
    end
    local finished = Event()
    local ok, thread = pcall(Thread, body, finished, interval, fn, ...)
    if not ok then
      error(caller_path(thread), 0)
    end
    return setmetatable({ thread = thread, finished = finished, interval = interval }, timer_mt)
  end
end
