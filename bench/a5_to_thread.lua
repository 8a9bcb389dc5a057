-- bench: A5 | async.to_thread round trip of an empty function, in a task | <= 1/2 of Python's time
-- One task awaits to_thread(noop) 5,000 times in a row: each call hands
-- the function to a worker of the default pool and suspends the task until
-- the result is back. The figure is the best round's time per call. Same
-- work as a5_to_thread.py (asyncio.to_thread).
local threading = require("threading")
local async = require("threading.async")

local CALLS, ROUNDS = 5000, 5

local function noop() end

local function round()
  return async.run(function()
    local t0 = threading.monotonic()
    for _ = 1, CALLS do
      async.to_thread(noop)
    end
    return threading.monotonic() - t0
  end)
end

round() -- warm up: the pool, its workers, their cached function
local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/call lower", best / CALLS * 1e6))
