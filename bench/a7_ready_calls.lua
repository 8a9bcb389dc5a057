-- bench: A7 | a task's calls that find their object ready (Lock, Queue, Event) | <= 1/2 of Python's time
-- One task, alone in its scheduler, makes 100,000 rounds of the blocking
-- calls that find their object ready: an uncontended Lock acquire and
-- release, a put and a get on a Queue, and the wait of an Event that is
-- set. Nothing ever waits: the figure, the best round's time per round of
-- the three, is what the task wrappers cost above the C calls. Same work
-- as a7_ready_calls.py (asyncio.Lock, asyncio.Queue, asyncio.Event).
local threading = require("threading")
local async = require("threading.async")

local N, ROUNDS = 100000, 5

local function round()
  return async.run(function()
    local lock, q, ev = threading.Lock(), threading.Queue(), threading.Event()
    ev:set()
    local t0 = threading.monotonic()
    for i = 1, N do
      lock:acquire()
      lock:release()
      q:put(i)
      q:get()
      ev:wait()
    end
    return threading.monotonic() - t0
  end)
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/round lower", best / N * 1e6))
