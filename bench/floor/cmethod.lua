-- cmethod.lua: the two empty C method calls of W3 (see cmethod.c), under the
-- interpreter that runs this file. The loop is w3_lock.lua's: 1,000,000
-- `obj:a() obj:b()` pairs per round, a new object each round, the best of
-- 7 rounds, in nanoseconds per pair. floor_cmethod is found on
-- package.cpath (bench/run.lua puts the floors' build directory there).
local floor = require("floor_cmethod")

local PAIRS, ROUNDS = 1000000, 7

local function round()
  local obj = floor.new()
  local t0 = floor.clock()
  for _ = 1, PAIRS do
    obj:a()
    obj:b()
  end
  return floor.clock() - t0
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f ns/pair lower", best / PAIRS * 1e9))
