-- bench: W4 | producer thread puts 200,000 integers, main thread gets them | >= 5x Python
-- A producer thread puts 1..N into an unbounded Queue; the main thread gets
-- them all. The figure is messages per second over the whole hand-over
-- (thread start included), best of a few rounds. Same work as
-- w4_queue_ints.py.
local threading = require("threading")

local N, ROUNDS = 200000, 5

local function producer(q, n)
  for i = 1, n do
    q:put(i)
  end
end

local function round()
  local q = threading.Queue()
  local t0 = threading.monotonic()
  local t = threading.start(producer, q, N)
  local sum = 0
  for _ = 1, N do
    sum = sum + q:get()
  end
  local dt = threading.monotonic() - t0
  assert(t:join(60))
  assert(sum == N * (N + 1) / 2, "lost or duplicated items")
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.0f msgs/s higher", N / best))
