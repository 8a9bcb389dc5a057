-- examples/07_pool.lua: CPU-bound work over a list with Pool:map.
--
-- Counts the primes below each number of a list, first one number after
-- another in this thread, then with pool:map on one worker per CPU. Each
-- worker is a thread with its own Lua state, so the counts really run in
-- parallel: on N cores the map takes about 1/N of the sequential time
-- (Python's ThreadPoolExecutor gets no speed-up here: its GIL runs one
-- thread of Python code at a time).
--
--   lua examples/07_pool.lua [items]

local threading = require("threading")

local ITEMS = tonumber(arg and arg[1]) or 16

-- Primes below n, by trial division: deliberately plain CPU work. It has no
-- upvalues, so each worker loads it once and reuses it for every item.
local function count_primes(n)
  local count = 0
  for k = 2, n - 1 do
    local prime = true
    local d = 2
    while d * d <= k do
      if k % d == 0 then
        prime = false
        break
      end
      d = d + 1
    end
    if prime then
      count = count + 1
    end
  end
  return count
end

-- Numbers whose count takes about 0.03 s each in this interpreter (LuaJIT
-- needs far larger ones than Lua).
local base = 20000
while true do
  local t0 = threading.monotonic()
  count_primes(base)
  if threading.monotonic() - t0 >= 0.03 then
    break
  end
  base = base * 2
end
local list = {}
for i = 1, ITEMS do
  list[i] = base + 1000 * i
end

local t0 = threading.monotonic()
local sequential = {}
for i, n in ipairs(list) do
  sequential[i] = count_primes(n)
end
local t_seq = threading.monotonic() - t0

local workers = threading.cpu_count()
local pool = threading.Pool(workers)
local warm = {}
for i = 1, workers do
  warm[i] = 10
end
pool:map(count_primes, warm) -- start the workers before the clock runs
t0 = threading.monotonic()
local parallel = pool:map(count_primes, list)
local t_par = threading.monotonic() - t0
pool:shutdown()

for i = 1, ITEMS do
  assert(parallel[i] == sequential[i], "the pool and the loop disagree")
end
print(string.format("primes below %d: %d (and %d more counts)", list[ITEMS],
  parallel[ITEMS], ITEMS - 1))
print(string.format("sequential:          %.2f s", t_seq))
print(string.format("pool of %d workers:   %.2f s (speed-up %.1fx)", workers, t_par, t_seq / t_par))
