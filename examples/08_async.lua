-- examples/08_async.lua: 200 coroutines in one Lua state, each awaiting an
-- HTTP fetch that runs in a pool of 50 worker threads.
--
-- The coroutines never block the thread they run in: fut:await() suspends
-- only the calling coroutine, and the scheduler of threading.async resumes
-- it when its future is done. The pool runs 50 fetches at a time, so the 200
-- fetches take about as long as 4 fetches one after another.
--
--   lua examples/08_async.lua [URL]
--
-- Without a URL it starts the project's local test server (built by make)
-- and fetches its /delay/0.5 page, which answers after half a second.
local threading = require("threading")
local async = require("threading.async")

local TASKS, WORKERS = 200, 50

-- The local test server, found next to this script when `server` is not on
-- package.path already.
local function start_local_server()
  local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  package.path = package.path .. ";" .. dir .. "/../spec/support/?.lua"
  return require("server").start()
end

local url, srv = arg and arg[1], nil
if not url then
  srv = start_local_server()
  url = srv.url .. "/delay/0.5"
end

-- Runs in a pool worker: one request, its status (or nil and the error).
local function fetch(u)
  local r, err = require("threading.http").get(u)
  if not r then
    return nil, err
  end
  return r.status
end

local pool = threading.Pool(WORKERS, {
  name = "fetch",
  initializer = function() require("threading.http") end, -- once per worker
})

-- One fetch alone, for comparison.
local t0 = threading.monotonic()
assert(pool:submit(fetch, url):result())
local one = threading.monotonic() - t0

t0 = threading.monotonic()
local statuses = async.run(function()
  local tasks, counts = {}, {}
  for i = 1, TASKS do
    tasks[i] = async.spawn(function()
      local ok, status, err = pool:submit(fetch, url):await()
      return ok and status or ("error: " .. tostring(err or status))
    end)
  end
  -- all 200 coroutines share this state: no lock needed for `counts`
  for i = 1, TASKS do
    local _, status = tasks[i]:await()
    counts[status] = (counts[status] or 0) + 1
  end
  return counts
end)
local elapsed = threading.monotonic() - t0
pool:shutdown()
if srv then
  srv:stop()
end

for status, n in pairs(statuses) do
  print(string.format("status %s: %d responses", tostring(status), n))
end
print(string.format("%d fetches from %d coroutines on %d workers: %.2f s"
  .. " (one fetch: %.2f s, so about %.1f fetches' time)",
  TASKS, TASKS, WORKERS, elapsed, one, elapsed / one))
