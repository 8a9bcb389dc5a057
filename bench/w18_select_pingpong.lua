-- bench: W18 | ping-pong through threading.select on both sides, 20,000 round trips | <= 1/2 of Python's time
-- floor: futex_pingpong spin | a token passed through one futex word, watched a while before sleeping
-- W5 with each side waiting in threading.select over its queue and an Event
-- that would stop it, Go's `select` loop: the main thread sends a number to
-- an echo thread, which sends it back. The figure is the best round's time
-- per round trip. Python has no wait on several queues at once:
-- w18_select_pingpong.py does the same round trips with get on one queue
-- each side, so the ratio says what select costs a Lua program against the
-- plainest Python one.
local threading = require("threading")

local TRIPS, ROUNDS = 20000, 5

local function echo(ping, pong, stop)
  while true do
    local i, n = threading.select({ ping, stop })
    if i ~= 1 then
      return
    end
    pong:put(n)
  end
end

local function round()
  local ping, pong = threading.Queue(), threading.Queue()
  local stop = threading.Event()
  local t = threading.start(echo, ping, pong, stop)
  local never = threading.Event()
  local t0 = threading.monotonic()
  for i = 1, TRIPS do
    ping:put(i)
    local k, n = threading.select({ pong, never })
    assert(k == 1 and n == i)
  end
  local dt = threading.monotonic() - t0
  stop:set()
  assert(t:join(60))
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/round-trip lower", best / TRIPS * 1e6))
