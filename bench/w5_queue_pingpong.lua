-- bench: W5 | ping-pong through two queues, 20,000 round trips | <= 1/2 of Python's time
-- floor: futex_pingpong spin | a token passed through one futex word, watched a while before sleeping
-- floor: futex_pingpong sleep | the same, sleeping in the kernel as soon as the token is missing
-- The main thread puts a number into one Queue; an echo thread gets it and
-- puts it back on a second Queue. The figure is the best round's time per
-- round trip. Same work as w5_queue_pingpong.py.
local threading = require("threading")

local TRIPS, ROUNDS = 20000, 5

local function echo(ping, pong)
  for n in ping:iter() do
    pong:put(n)
  end
end

local function round()
  local ping, pong = threading.Queue(), threading.Queue()
  local t = threading.start(echo, ping, pong)
  local t0 = threading.monotonic()
  for i = 1, TRIPS do
    ping:put(i)
    assert(pong:get() == i)
  end
  local dt = threading.monotonic() - t0
  ping:shutdown()
  assert(t:join(60))
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/round-trip lower", best / TRIPS * 1e6))
