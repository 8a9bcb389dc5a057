-- bench: A4 | mixed: 1,000 tasks on queues, a lock and a condition, fed by 4 threads | >= 2x Python's rate
-- Inside async.run, 1,000 tasks each do 10 rounds of: take an item from a
-- Queue the threads fill, take a credit under a Condition (waiting until a
-- thread has granted one), update a total under a Lock the threads also
-- take, and put the item on a result Queue. Four threads each put 2,500
-- items and grant 2,500 credits (notify one waiter per credit), then take
-- 2,500 results, each under the Lock. The figure is the best round's
-- rounds per second. Same work as a4_mixed.py (asyncio primitives fed
-- from threads with call_soon_threadsafe / run_coroutine_threadsafe).
local threading = require("threading")
local async = require("threading.async")

local TASKS, PER_TASK, THREADS, RUNS = 1000, 10, 4, 3
local ITEMS = TASKS * PER_TASK

local function feeder(qin, qout, cond, credits, lock, total, k)
  for i = 1, k do
    qin:put(i)
    cond:acquire()
    credits:add(1)
    cond:notify()
    cond:release()
  end
  for _ = 1, k do
    qout:get()
    lock:acquire()
    total:add(-1)
    lock:release()
  end
end

local function one_run()
  local qin, qout = threading.Queue(), threading.Queue()
  local cond, credits = threading.Condition(), threading.Value(0)
  local lock, total = threading.Lock(), threading.Value(0)
  local threads = {}
  local t0 = threading.monotonic()
  async.run(function()
    for _ = 1, TASKS do
      async.spawn(function()
        for _ = 1, PER_TASK do
          local x = qin:get()
          cond:acquire()
          while credits:get() == 0 do cond:wait() end
          credits:add(-1)
          cond:release()
          lock:acquire()
          total:add(1)
          lock:release()
          qout:put(x)
        end
      end)
    end
    for i = 1, THREADS do
      threads[i] = threading.start(feeder, qin, qout, cond, credits, lock, total,
        ITEMS / THREADS)
    end
  end)
  for i = 1, THREADS do assert(threads[i]:join(120)) end
  local dt = threading.monotonic() - t0
  assert(total:get() == 0 and credits:get() == 0, "lost an item or a credit")
  return dt
end

local best = math.huge
for _ = 1, RUNS do best = math.min(best, one_run()) end
print(string.format("RESULT %.0f rounds/s higher", ITEMS / best))
