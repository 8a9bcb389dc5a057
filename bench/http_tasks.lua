-- The Lua side of H1 and H3: n tasks of one threading.async scheduler each
-- GET /delay/<delay> from the local test server, all at once. The requests
-- run in the scheduler's thread, on the state's HTTP driver (src/http_io.c).
-- bench/http_tasks.py does the same with asyncio streams.
--
-- Returns the wall time from the first request to the last response, the
-- OS threads the process gained (read from /proc/self/status while every
-- request is in flight) and the growth of its resident memory (VmHWM at the
-- end against VmRSS once the driver exists), in KiB.
local threading = require("threading")
local async = require("threading.async")
local http = require("threading.http")

local function status_field(name)
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(name .. ":%s*(%d+)"))
end

return function(n, delay)
  package.path = package.path .. ";" .. ((arg[0]:match("^(.*)/[^/]*$") or ".")
    .. "/../spec/support/?.lua")
  local srv = require("server").start()
  local url = srv.url .. "/delay/" .. delay
  -- counted: any thread a request starts (libcurl's, or ours)
  local threads0 = status_field("Threads")
  async.run(function()
    assert(http.get(srv.url .. "/get")) -- makes the state's driver
  end)
  collectgarbage()
  local rss0 = status_field("VmRSS")
  local peak_threads = threads0
  local t0 = threading.monotonic()
  async.run(function()
    local tasks = {}
    for i = 1, n do
      tasks[i] = async.spawn(function()
        local r, err = http.get(url)
        if not r or r.status ~= 200 then
          error(err or r.status)
        end
      end)
    end
    async.sleep(delay / 2) -- every request is in flight
    peak_threads = status_field("Threads")
    for i = 1, n do
      assert(tasks[i]:await())
    end
  end)
  local elapsed = threading.monotonic() - t0
  local grown = status_field("VmHWM") - rss0
  srv:stop()
  return elapsed, peak_threads - threads0, grown
end
