-- bench: W1b | start 200 threads, then join them all | <= 40 us/thread
-- floor: pthread_create_join batch 200 | 200 pthread_create, then 200 pthread_join of empty threads
-- Each round starts 200 threads running an empty function, then joins
-- them all; the figure is the best round's time per thread. Rounds follow
-- each other closely, as the bursts of a program that fans work out to
-- threads do. Same work as w1b_start_burst.py.
local threading = require("threading")

local THREADS, ROUNDS = 200, 15

local function noop() end

local function round()
  local threads = {}
  local t0 = threading.monotonic()
  for i = 1, THREADS do
    threads[i] = threading.Thread(noop):start()
  end
  for i = 1, THREADS do
    threads[i]:join()
  end
  return threading.monotonic() - t0
end

round() -- warm up: the allocator, the library's pages, the first stacks
local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/thread lower", best / THREADS * 1e6))
