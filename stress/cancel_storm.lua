-- Stress: threads cancelled at random moments while they hold or wait on
-- locks, conditions, semaphores, events, queues and futures. Afterwards every object
-- still works and no thread is left behind.
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local rounds = math.floor(300 * scale)
local seed = tonumber(os.getenv("STRESS_SEED") or os.time())
math.randomseed(seed)

local shared = {
  lock = threading.Lock(),
  rlock = threading.RLock(),
  cond = threading.Condition(),
  sem = threading.Semaphore(3),
  event = threading.Event(),
  queue = threading.Queue(8),
  counter = threading.Value(0),
  pool = threading.Pool(2),
}

-- Each worker loops over operations that block now and then; `with` and
-- the queue's own bookkeeping must leave everything consistent whenever
-- the cancellation strikes.
local function worker(s, kind)
  local th = require("threading")
  while true do
    if kind == 1 then
      s.lock:with(function() s.counter:add(1) th.sleep(0.0005) end)
    elseif kind == 2 then
      s.rlock:with(function() s.rlock:with(function() s.counter:add(1) end) end)
    elseif kind == 3 then
      s.cond:with(function()
        s.cond:wait(0.002)
        s.cond:notify()
      end)
    elseif kind == 4 then
      s.sem:with(function() th.sleep(0.0005) end)
    elseif kind == 5 then
      s.event:wait(0.002)
      if math.random() < 0.5 then s.event:set() else s.event:clear() end
    elseif kind == 6 then
      s.queue:put(1, true, 0.002)
    elseif kind == 7 then
      s.queue:get(true, 0.002)
    else
      s.pool:submit(th.sleep, 0.001):result(0.002)
    end
  end
end

local t0 = threading.monotonic()
local live = {}
local cancelled = 0
for _ = 1, 12 do
  live[#live + 1] = threading.start(worker, shared, math.random(8))
end
for _ = 1, rounds do
  threading.sleep(math.random() * 0.002)
  local i = math.random(#live)
  local t = live[i]
  t:cancel()
  local ok, err = t:join(10)
  assert(ok ~= nil, "a cancelled thread did not end")
  assert(ok == false and err == "cancelled", "a worker ended otherwise: " .. tostring(err))
  cancelled = cancelled + 1
  live[i] = threading.start(worker, shared, math.random(8))
end
for _, t in ipairs(live) do
  t:cancel()
  assert(t:join(10) ~= nil, "a cancelled thread did not end")
  cancelled = cancelled + 1
end

-- everything still works
assert(not shared.lock:locked(), "the Lock was left held")
assert(shared.lock:acquire(false)); shared.lock:release()
assert(not shared.rlock:locked(), "the RLock was left held")
assert(shared.rlock:acquire(false)); shared.rlock:release()
for _ = 1, 3 do assert(shared.sem:acquire(false), "the Semaphore lost a permit") end
assert(not shared.sem:acquire(false), "the Semaphore gained a permit")
for _ = 1, 3 do shared.sem:release() end
assert(shared.cond:acquire(false)); shared.cond:notify_all(); shared.cond:release()
shared.event:set()
assert(shared.event:wait(1))
while shared.queue:get_nowait() ~= nil do end
assert(shared.queue:put(42, true, 1))
assert(shared.queue:get(true, 1) == 42)
local ok, v = shared.pool:submit(function(x) return x * 2 end, 21):result(10)
assert(ok and v == 42, "the Pool no longer runs tasks")
shared.pool:shutdown()
assert(#threading.enumerate() == 1, "threads are left: " .. #threading.enumerate())
print(("cancel storm: %d threads cancelled at random moments in %.2f s; every object still works (seed %d)")
  :format(cancelled, threading.monotonic() - t0, seed))
