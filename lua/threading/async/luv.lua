--- threading.async.luv: a threading.async scheduler driven by a luv (libuv)
-- loop, so that a program living in that loop (Neovim's vim.uv included)
-- can await threads, futures, queues and HTTP requests without blocking it.
--
--   local uv = require("luv")
--   local tl = require("threading.async.luv")
--   local s = tl.scheduler(uv)          -- uv: the luv module (default: require "luv")
--   s:spawn(function()
--     local ok, r = pool:submit(work):await()   -- suspends this task only
--   end)
--   uv.run()                            -- returns once no handle and no task is left
--
-- The scheduler's file descriptor (an eventfd, readable when a task was
-- woken, spawned or posted) is watched with uv.new_poll, and its next
-- deadline (a task's sleep or timeout) with a uv timer; each of them steps
-- the scheduler, which runs every task that can run and returns at once.
-- While the scheduler has no task, its handles are unreferenced: they do
-- not keep uv.run() going. s:close() stops and closes them; as for any luv
-- handle, let the loop run once more (uv.run("nowait")) so that libuv
-- finishes closing them before the program exits.
local async = require("threading.async")

local luv_adapter = {}

local ceil, max = math.ceil, math.max

--- luv_adapter.scheduler([uv]) -> a threading.async scheduler stepped by uv's loop
function luv_adapter.scheduler(uv)
  uv = uv or require("luv")
  local s = async.scheduler()
  local poll = assert(uv.new_poll(s:fd()))
  local timer = assert(uv.new_timer())
  local stepping = false

  local function drive()
    if stepping or s.closed then
      return
    end
    stepping = true
    local ok, delay, left = pcall(s.step, s)
    stepping = false
    if not ok then
      error(delay, 0)
    end
    if delay ~= nil then
      timer:start(max(0, ceil(delay * 1000)), 0, drive)
    else
      timer:stop()
    end
    if left > 0 then
      poll:ref()
      timer:ref()
    else
      poll:unref()
      timer:unref()
    end
  end

  poll:start("r", drive)
  poll:unref()
  timer:unref()

  local spawn, close = s.spawn, s.close
  --- s:spawn(fn, ...): as async's, and keeps the loop running until it ends
  function s.spawn(self, fn, ...)
    local task = spawn(self, fn, ...)
    poll:ref()
    timer:ref()
    return task
  end
  --- s:close(): stop watching, close the luv handles, end the scheduler
  function s.close(self)
    if not self.closed then
      poll:stop()
      timer:stop()
      poll:close()
      timer:close()
    end
    return close(self)
  end
  return s
end

return luv_adapter
