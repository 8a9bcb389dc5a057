-- bench: W10 | Condition handoff between two threads, 2 x 20,000 notify/wake | <= 1/2 of Python's time
-- floor: futex_pingpong spin handoff | a token passed through one futex word, watched a while before sleeping
-- floor: futex_pingpong sleep handoff | the same, sleeping in the kernel as soon as the token is missing
-- Two threads share a Condition (over its default RLock) and a turn flag
-- (a threading.Value here, a list cell in Python). Each waits under the
-- lock until the flag says it is its turn, flips it and notifies the other:
-- every handoff is one notify and one wake-up. The figure is the best
-- round's time per handoff. Same work as w10_condition_handoff.py.
local threading = require("threading")

local TRIPS, ROUNDS = 20000, 5

-- turn 1: the partner's move; turn 0: the main thread's
local function partner(c, turn, trips)
  c:acquire()
  for _ = 1, trips do
    while turn:get() ~= 1 do
      c:wait()
    end
    turn:set(0)
    c:notify()
  end
  c:release()
end

local function round()
  local c, turn = threading.Condition(), threading.Value(0)
  local t = threading.start(partner, c, turn, TRIPS)
  local t0 = threading.monotonic()
  c:acquire()
  for _ = 1, TRIPS do
    turn:set(1)
    c:notify()
    while turn:get() ~= 0 do
      c:wait()
    end
  end
  c:release()
  local dt = threading.monotonic() - t0
  assert(t:join(60))
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/handoff lower", best / (2 * TRIPS) * 1e6))
