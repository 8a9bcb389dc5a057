-- bench: W6 | 2 threads of pure-Lua CPU work vs the same work sequentially | >= 1.8
-- The same loop as w6_cpu_scaling.py. Its length is calibrated so that one
-- half takes about 0.6 s in this interpreter (Python is far slower per
-- iteration; the figure is a ratio of each language to itself). Sequential:
-- one thread runs both halves; parallel: two threads run one half each.
-- The figure is the best sequential time over the best parallel time.
local threading = require("threading")

local HALF_SECONDS, ROUNDS = 0.6, 5

local function work(n)
  local s = 0
  for i = 1, n do
    s = (s + i * i) % 1000003
  end
  return s
end

local function halves(n, count)
  local s = 0
  for _ = 1, count do
    s = s + work(n)
  end
  return s
end

local function timed(fn)
  local t0 = threading.monotonic()
  fn()
  return threading.monotonic() - t0
end

-- calibrate in a thread, where the work will run
local function calibrate()
  local n = 100000
  while true do
    local dt = timed(function()
      assert(threading.start(work, n):join())
    end)
    if dt >= 0.1 then
      return math.floor(n * HALF_SECONDS / dt)
    end
    n = n * 2
  end
end

local n = calibrate()
local seq, par = math.huge, math.huge
for _ = 1, ROUNDS do
  seq = math.min(seq, timed(function()
    assert(threading.start(halves, n, 2):join())
  end))
  par = math.min(par, timed(function()
    local a = threading.start(halves, n, 1)
    local b = threading.start(halves, n, 1)
    assert(a:join())
    assert(b:join())
  end))
end
io.stderr:write(string.format("w6: n=%d sequential %.3f s, parallel %.3f s\n", n, seq, par))
print(string.format("RESULT %.2f speed-up higher", seq / par))
