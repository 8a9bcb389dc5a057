-- bench: L1 | luv timer every 10 ms while 1,000 pool futures complete: worst gap (ms) | < 20 ms
-- A luv loop drives a threading.async scheduler (threading.async.luv) whose
-- 1,000 tasks each await a pool future (4 workers, 2 ms of sleep each, so
-- the completions spread over about half a second), while a luv timer ticks
-- every 10 ms; the figure is the longest gap between two ticks. Python's
-- side: an asyncio loop awaiting run_in_executor futures of a 4-worker
-- ThreadPoolExecutor, with a call_later heartbeat.
local uv = require("luv")
local threading = require("threading")
local tl = require("threading.async.luv")

local N, WORKERS, PERIOD = 1000, 4, 10

local pool = threading.Pool(WORKERS)
local s = tl.scheduler(uv)
local worst, last, ticks = 0, nil, 0
local hb = uv.new_timer()
hb:start(PERIOD, PERIOD, function()
  local now = uv.hrtime()
  if last then
    worst = math.max(worst, (now - last) / 1e6)
  end
  last = now
  ticks = ticks + 1
end)
local left = N
for _ = 1, N do
  s:spawn(function()
    assert(pool:submit(function() require("threading").sleep(0.002) end):await())
    left = left - 1
    if left == 0 then
      hb:stop()
      hb:close()
    end
  end)
end
uv.run()
s:close()
uv.run("nowait")
pool:shutdown()
io.stderr:write(("L1: %d ticks, worst gap %.2f ms\n"):format(ticks, worst))
print(string.format("RESULT %.2f ms lower", worst))
