-- bench: A3 | idle cost: CPU of a scheduler with 1,000 tasks on idle queues, beside busy threads | <= 1 %
-- A thread runs async.run with 1,000 tasks blocked on idle queues of their
-- own while two other threads ping-pong through their own queues for
-- about 2 seconds. The figure is the CPU time the scheduler's thread used
-- meanwhile (from /proc/self/task/<tid>/schedstat) as a percentage of the
-- wall time. Same work as a3_idle_cost.py (an asyncio loop in a thread).
local threading = require("threading")

local TASKS, SECONDS = 1000, 2

local function cpu_ns(tid)
  local f = assert(io.open("/proc/self/task/" .. tid .. "/schedstat"))
  local ns = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return ns
end

local ready, stop = threading.Event(), threading.Event()
local tidq = threading.Queue()
local sched = threading.start(function(n, r, s, tq)
  local async = require("threading.async")
  local th = require("threading")
  tq:put(th.get_native_id())
  async.run(function()
    for _ = 1, n do
      async.spawn(function(q) q:get() end, th.Queue())
    end
    async.sleep(0)
    r:set()
    s:wait()
  end)
end, TASKS, ready, stop, tidq)
local tid = tidq:get()
assert(ready:wait(60))
local ping, pong = threading.Queue(), threading.Queue()
local echo = threading.start(function(a, b)
  for v in a:iter() do b:put(v) end
end, ping, pong)
local c0, t0 = cpu_ns(tid), threading.monotonic()
while threading.monotonic() - t0 < SECONDS do
  for i = 1, 1000 do
    ping:put(i)
    pong:get()
  end
end
local used, wall = cpu_ns(tid) - c0, threading.monotonic() - t0
ping:shutdown()
echo:join(60)
stop:set()
sched:cancel()
sched:join(60)
print(string.format("RESULT %.3f %% lower", used / 1e9 / wall * 100))
