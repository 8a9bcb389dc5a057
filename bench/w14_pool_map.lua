-- bench: W14 | Pool:map of 1,000,000 tiny tasks in chunks of 10,000 | no slower than Python
-- A pool of 2 workers maps x -> x * 2 + 1 over the integers 1..1,000,000,
-- 10,000 items per task, and gets the results back in order. The figure is
-- the best round's time. Python's ThreadPoolExecutor.map ignores chunksize,
-- so w14_pool_map.py cuts the same chunks itself: the same work on both sides.
local threading = require("threading")

local N, CHUNK, ROUNDS = 1000000, 10000, 3

local function f(x)
  return x * 2 + 1
end

local list = {}
for i = 1, N do
  list[i] = i
end

local pool = threading.Pool(2)

local function round()
  local t0 = threading.monotonic()
  local r = pool:map(f, list, CHUNK)
  local dt = threading.monotonic() - t0
  assert(r.n == N and r[1] == 3 and r[N] == N * 2 + 1)
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
pool:shutdown()
print(string.format("RESULT %.1f ms lower", best * 1e3))
