-- The Lua side of W4, W4t and W11: a producer thread puts N items (the
-- integers 1..N, or tables {i, "x"}) into a queue and the main thread gets
-- them all. The figure is messages per second over the whole hand-over
-- (thread start included), best of a few rounds. bench/queue_handover.py
-- does the same with Python's queue module.
local threading = require("threading")

local N, ROUNDS = 200000, 5

local function producer(q, n, tables)
  if tables then
    for i = 1, n do q:put({ i, "x" }) end
  else
    for i = 1, n do q:put(i) end
  end
end

-- kind: "Queue" or "SimpleQueue"; tables: send {i, "x"} rather than i
return function(kind, tables)
  local function round()
    local q = threading[kind]()
    local t0 = threading.monotonic()
    local t = threading.start(producer, q, N, tables)
    local sum = 0
    if tables then
      for _ = 1, N do sum = sum + q:get()[1] end
    else
      for _ = 1, N do sum = sum + q:get() end
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
end
