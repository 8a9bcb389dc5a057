-- bench: W16 | Value:get of a number, 1,000,000 pairs of calls, uncontended | <= 1.25x the floor
-- floor: cmethod | obj:a() obj:b(), two empty C methods, under the same interpreter
-- One thread reads a Value that holds a number, two gets per turn of the
-- loop (the floor's two calls); the figure is the best round's time per
-- pair, loop included. A get of a number takes no lock (src/shared.c). Same
-- work as w16_value_get.py, whose shared value is multiprocessing.Value
-- (its reads take the value's lock).
local threading = require("threading")

local PAIRS, ROUNDS = 1000000, 7

local function round()
  local v = threading.Value(42)
  local t0 = threading.monotonic()
  for _ = 1, PAIRS do
    v:get()
    v:get()
  end
  return threading.monotonic() - t0
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f ns/pair lower", best / PAIRS * 1e9))
