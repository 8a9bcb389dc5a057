--- threading: Python-style threads for Lua on native pthreads.
-- The C core (threading.core) provides the types; this file re-exports it
-- and adds what is best written in Lua.
local core = require("threading.core")

local threading = {}
for k, v in pairs(core) do
  threading[k] = v
end

local error, select, setmetatable = error, select, setmetatable
local unpack = table.unpack or unpack

-- Release after a protected call, then pass its results or its error on.
local function release_after(lock, ok, ...)
  lock:release()
  if not ok then
    error((...), 0)
  end
  return ...
end

--- obj:with(fn, ...): acquire, call fn(...), release (also on error), and
-- return fn's results.
local function with(self, fn, ...)
  self:acquire()
  return release_after(self, pcall(fn, ...))
end

local guard_mt = {
  __close = function(g)
    local lock = g[1]
    if lock then
      g[1] = nil
      lock:release()
    end
  end,
}
guard_mt.__gc = nil
guard_mt.__index = { release = guard_mt.__close }

--- obj:guard(): acquire and return a value whose closing releases it, for
-- Lua 5.4's `local _ <close> = lock:guard()`. The guard exists before the
-- lock is taken: once it is, nothing is left that could fail.
local function guard(self)
  local g = setmetatable({ false }, guard_mt)
  self:acquire()
  g[1] = self
  return g
end

-- A cancellation arriving while these run is held back until they are
-- done or call out (into fn, or the release): it must not strike between an
-- acquire and the pcall, or between the pcall and the release. After guard
-- returns it is held back one instruction more, for the caller's <close>.
core._protect(release_after, with, guard_mt.__close)
core._protect_guard(guard)

--- Add the Lua-side methods to a type's method table.
local function extend(type_name, methods)
  local mt = debug.getregistry()[type_name]
  for name, fn in pairs(methods) do
    mt.methods[name] = fn
  end
end

threading._extend = extend
extend("threading.Lock", { with = with, guard = guard })
extend("threading.RLock", { with = with, guard = guard })

threading._with = with
threading._guard = guard

-- Parts written in Lua, each in its own file under lua/threading/; each is
-- a function(threading) that adds to the module table.
local parts = { "sync", "timer", "pool" }
for _, name in ipairs(parts) do
  require("threading." .. name)(threading)
end

-- threading.excepthook: read and set through the core, which keeps one per
-- main state so that a failing thread, in its own state, finds it.
local excepthook = core._excepthook
threading._excepthook = nil
setmetatable(threading, {
  __index = function(_, key)
    if key == "excepthook" then
      return excepthook()
    end
  end,
  __newindex = function(t, key, value)
    if key == "excepthook" then
      excepthook(value)
    else
      rawset(t, key, value)
    end
  end,
})

threading._pack = function(...)
  return { n = select("#", ...), ... }
end
threading._unpack = function(t)
  return unpack(t, 1, t.n)
end

return threading
