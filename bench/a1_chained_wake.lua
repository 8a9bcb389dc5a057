-- bench: A1 | chained wake: 1,000 tasks on their own Events, set by a thread | <= 1/2 of Python's time
-- Inside async.run, 1,000 tasks each wait on their own Event and then put
-- their number on an acknowledgement Queue; a thread sets the events one at
-- a time and waits for each acknowledgement before the next. The figure is
-- the best round's time per wake (set to acknowledgement). Same work as
-- a1_chained_wake.py (asyncio.Event set through call_soon_threadsafe).
-- A1_N sets the number of tasks (the issue asks for 100, 1,000, 10,000:
-- the cost per wake should not grow with it).
local threading = require("threading")
local async = require("threading.async")

local N = tonumber(os.getenv("A1_N") or "1000")
local ROUNDS = 3

local function round()
  return async.run(function()
    local events, ack = {}, threading.Queue()
    for i = 1, N do
      events[i] = threading.Event()
      async.spawn(function(e, q, n)
        e:wait()
        q:put(n)
      end, events[i], ack, i)
    end
    async.sleep(0) -- every task runs up to its wait
    local setter = threading.start(function(evs, q, n)
      local th = require("threading")
      local t0 = th.monotonic()
      for i = 1, n do
        evs[i]:set()
        assert(q:get() == i)
      end
      return th.monotonic() - t0
    end, events, ack, N)
    local _, dt = setter:join()
    return dt
  end)
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/wake lower", best / N * 1e6))
