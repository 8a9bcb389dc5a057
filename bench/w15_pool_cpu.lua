-- bench: W15 | Pool:map of CPU-bound tasks on 2 workers vs sequential | >= 1.8
-- 16 items of pure-Lua arithmetic, each calibrated to about 0.1 s in this
-- interpreter; sequential: one worker runs them all; parallel: a pool of 2
-- maps them. The figure is the best sequential time over the best parallel
-- time (each language against itself). Same work as w15_pool_cpu.py.
local threading = require("threading")

local ITEMS, ITEM_SECONDS, ROUNDS = 16, 0.1, 3

local function work(n)
  local s = 0
  for i = 1, n do
    s = (s + i * i) % 1000003
  end
  return s
end

local function timed(fn)
  local t0 = threading.monotonic()
  fn()
  return threading.monotonic() - t0
end

local one = threading.Pool(1)
local two = threading.Pool(2)

local function calibrate()
  local n = 100000
  while true do
    local dt = timed(function()
      assert(one:submit(work, n):result())
    end)
    if dt >= 0.05 then
      return math.floor(n * ITEM_SECONDS / dt)
    end
    n = n * 2
  end
end

local n = calibrate()
local list = {}
for i = 1, ITEMS do
  list[i] = n
end
two:map(work, { n, n }) -- start both workers
local seq, par = math.huge, math.huge
for _ = 1, ROUNDS do
  seq = math.min(seq, timed(function() one:map(work, list) end))
  par = math.min(par, timed(function() two:map(work, list) end))
end
one:shutdown()
two:shutdown()
io.stderr:write(string.format("w15: n=%d sequential %.3f s, pool of 2 %.3f s\n", n, seq, par))
print(string.format("RESULT %.2f speed-up higher", seq / par))
