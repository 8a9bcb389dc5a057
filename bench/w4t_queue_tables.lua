-- bench: W4t | producer thread puts 200,000 tables {i, "x"}, main gets them | at least as fast as Python
-- A producer thread puts {i, "x"} for i = 1..N into an unbounded Queue (each
-- table is copied through a transfer buffer); the main thread gets them all.
-- The figure is messages per second, thread start included, best of a few
-- rounds. Same work as w4t_queue_tables.py.
local threading = require("threading")

local N, ROUNDS = 200000, 5

local function producer(q, n)
  for i = 1, n do
    q:put({ i, "x" })
  end
end

local function round()
  local q = threading.Queue()
  local t0 = threading.monotonic()
  local t = threading.start(producer, q, N)
  local sum = 0
  for _ = 1, N do
    sum = sum + q:get()[1]
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
