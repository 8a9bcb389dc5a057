-- examples/04_semaphore.lua: at most N workers at once on a shared resource.
--
-- Eight workers each make three "requests" to a service that accepts only
-- three connections at a time. A BoundedSemaphore(3) is the pool of
-- connections: a worker takes one before its request and gives it back
-- after. A shared counter shows how many are in use; the peak never goes
-- above 3, however the threads are scheduled.
--
--   lua examples/04_semaphore.lua

local threading = require("threading")

local WORKERS, REQUESTS, CONNECTIONS = 8, 3, 3

local pool = threading.BoundedSemaphore(CONNECTIONS)
local in_use = threading.Value(0)     -- connections taken right now
local peak = threading.Value(0)       -- the most ever taken at once

-- Raise peak to n if n is higher (another thread may be doing the same).
local function record_peak(n)
  local p = peak:get()
  while n > p and not peak:compare_and_set(p, n) do
    p = peak:get()
  end
end

local function worker(id)
  for request = 1, REQUESTS do
    -- pool:with(fn) takes a connection, calls fn, and gives it back even
    -- if fn fails (Python: `with pool:`)
    pool:with(function()
      local n = in_use:add(1)
      record_peak(n)
      io.write(("worker %d: request %d  (connections in use: %d)\n"):format(id, request, n))
      threading.sleep(0.05)           -- the request itself: I/O, a wait
      in_use:add(-1)
    end)
  end
end

local t0 = threading.monotonic()
local threads = {}
for id = 1, WORKERS do
  threads[id] = threading.start(worker, id)
end
for _, t in ipairs(threads) do
  assert(t:join())
end

print(("\n%d requests by %d workers in %.2f s; peak connections in use: %d (limit %d)")
  :format(WORKERS * REQUESTS, WORKERS, threading.monotonic() - t0, peak:get(), CONNECTIONS))
-- 24 requests of 50 ms through 3 connections take about 8 x 50 ms = 0.4 s
