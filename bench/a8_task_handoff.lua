-- bench: A8 | two tasks of one scheduler take turns through two Queues | <= 1/2 of Python's time
-- Two tasks of one async.run ping-pong 20,000 times: one puts on the
-- first Queue and gets from the second, the other the reverse, so every
-- get finds its queue empty and suspends its task until the other puts.
-- The figure, the best round's time per handoff (two per round trip), is
-- what a task's suspension and wake-up cost the scheduler: nothing else
-- runs and no OS thread sleeps. Same work as a8_task_handoff.py (two
-- asyncio tasks on two asyncio.Queue).
local threading = require("threading")
local async = require("threading.async")

local N, ROUNDS = 20000, 5

local function round()
  return async.run(function()
    local ping, pong = threading.Queue(), threading.Queue()
    local t0 = threading.monotonic()
    local a = async.spawn(function()
      for i = 1, N do
        ping:put(i)
        pong:get()
      end
    end)
    local b = async.spawn(function()
      for i = 1, N do
        ping:get()
        pong:put(i)
      end
    end)
    a:await()
    b:await()
    return threading.monotonic() - t0
  end)
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/handoff lower", best / (2 * N) * 1e6))
