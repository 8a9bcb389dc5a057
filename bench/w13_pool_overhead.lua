-- bench: W13 | Pool: submit + result of an empty function, 100,000 tasks | <= 1/5 of Python's time
-- A pool of 2 workers; each round submits 100,000 tasks running an empty
-- function, then collects every result in order. The figure is the best
-- round's time per task. Same work as w13_pool_overhead.py.
local threading = require("threading")

local TASKS, ROUNDS = 100000, 5

local function noop() end

local pool = threading.Pool(2)
local futures = {}

local function round()
  local t0 = threading.monotonic()
  for i = 1, TASKS do
    futures[i] = pool:submit(noop)
  end
  for i = 1, TASKS do
    assert(futures[i]:result())
  end
  return threading.monotonic() - t0
end

round() -- warm up: the workers, their states, the allocator
local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
pool:shutdown()
print(string.format("RESULT %.2f us/task lower", best / TASKS * 1e6))
