-- bench: A2 | scheduler tax: thread ping-pong beside a scheduler with 1,000 idle tasks | <= 1.1
-- Two threads ping-pong 20,000 round trips through two Queues, first
-- alone, then while another thread runs async.run with 1,000 tasks blocked
-- on idle queues of their own. The figure is the time per round trip with
-- the scheduler over the time without it (1.0: no tax), each the best of
-- 3 rounds. Same work as a2_scheduler_tax.py (an asyncio loop in a thread).
local threading = require("threading")

local TRIPS, ROUNDS, TASKS = 20000, 3, 1000

local function pingpong()
  local ping, pong = threading.Queue(), threading.Queue()
  local echo = threading.start(function(a, b, n)
    for _ = 1, n do b:put(a:get()) end
  end, ping, pong, TRIPS)
  local t0 = threading.monotonic()
  for i = 1, TRIPS do
    ping:put(i)
    pong:get()
  end
  local dt = threading.monotonic() - t0
  assert(echo:join(60))
  return dt
end

local function best()
  local b = math.huge
  for _ = 1, ROUNDS do b = math.min(b, pingpong()) end
  return b
end

local alone = best()
local ready, stop = threading.Event(), threading.Event()
local sched = threading.start(function(n, r, s)
  local async = require("threading.async")
  local th = require("threading")
  async.run(function()
    for _ = 1, n do
      async.spawn(function(q) q:get() end, th.Queue())
    end
    async.sleep(0)
    r:set()
    s:wait()
  end)
end, TASKS, ready, stop)
assert(ready:wait(60))
local beside = best()
stop:set()
sched:cancel()
sched:join(60)
print(string.format("RESULT %.3f x lower", beside / alone))
