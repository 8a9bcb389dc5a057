-- examples/11_luv.lua: luv (libuv) timers and threading's threads, pools
-- and HTTP requests in one event loop, the way a program that already lives
-- in luv (or Neovim, whose vim.uv is luv) uses this module.
--
--   lua examples/11_luv.lua
--
-- A luv timer prints a heartbeat every 100 ms. Meanwhile tasks of a
-- threading.async scheduler, stepped by the same loop through
-- threading.async.luv, wait for a CPU-bound job in a pool, a thread's join
-- and three slow web requests (to the project's local test server): none of
-- them blocks the loop, so the heartbeat keeps its pace.
local uv = require("luv")
local threading = require("threading")
local http = require("threading.http")
local tl = require("threading.async.luv")

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = package.path .. ";" .. dir .. "/../spec/support/?.lua"
local srv = require("server").start()

local t0 = uv.hrtime()
local function stamp()
  return ("%5.2f s"):format((uv.hrtime() - t0) / 1e9)
end

local beats = 0
local heartbeat = uv.new_timer()
heartbeat:start(100, 100, function()
  beats = beats + 1
  print(stamp(), "heartbeat " .. beats)
end)

local s = tl.scheduler(uv)
local pool = threading.Pool(2)
local left = 3

local function done()
  left = left - 1
  if left == 0 then
    heartbeat:stop()
    heartbeat:close()
  end
end

s:spawn(function()
  local _, n = pool:submit(function()
    local count = 0
    for i = 1, 3e7 do
      count = count + i % 7
    end
    return count
  end):await()
  print(stamp(), "pool job done: " .. n)
  done()
end)

s:spawn(function()
  local t = threading.start(function()
    require("threading").sleep(0.3)
    return "slept 0.3 s"
  end)
  local _, msg = t:await()
  print(stamp(), "thread joined: " .. msg)
  done()
end)

s:spawn(function()
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = require("threading.async").spawn(function()
      local r = assert(http.get(srv.url .. "/delay/0.5"))
      print(stamp(), ("request %d -> %d"):format(i, r.status))
    end)
  end
  for i = 1, 3 do
    assert(tasks[i]:await())
  end
  done()
end)

uv.run()             -- returns once the heartbeat is closed and no task is left
s:close()
uv.run("nowait")     -- lets libuv finish closing the scheduler's handles
pool:shutdown()
srv:stop()
print(stamp(), ("%d heartbeats while everything ran in one loop"):format(beats))
assert(beats >= 3, "the loop was blocked")
