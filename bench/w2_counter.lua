-- bench: W2 | demo-2 counter: 2 threads x 100,000 locked increments | <= 3/4 of Python's time
-- The tutorial's second demo as a benchmark: two threads each add 1 to a
-- shared counter 100,000 times, each increment under a Lock. The figure is
-- the best round's wall time, thread start and join included. Same work as
-- w2_counter.py.
local threading = require("threading")

local INCREMENTS, ROUNDS = 100000, 5

local function increment(counter, lock)
  for _ = 1, INCREMENTS do
    lock:acquire()
    counter:set(counter:get() + 1)
    lock:release()
  end
end

local function round()
  local counter, lock = threading.Value(0), threading.Lock()
  local t0 = threading.monotonic()
  local t1 = threading.start(increment, counter, lock)
  local t2 = threading.start(increment, counter, lock)
  assert(t1:join())
  assert(t2:join())
  local elapsed = threading.monotonic() - t0
  assert(counter:get() == 2 * INCREMENTS, "lost updates under the lock")
  return elapsed
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f ms lower", best * 1e3))
