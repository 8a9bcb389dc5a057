-- bench: W9 | Event ping-pong between two threads, 20,000 round trips | <= 1/2 of Python's time
-- floor: futex_pingpong spin | a token passed through one futex word, watched a while before sleeping
-- floor: futex_pingpong sleep | the same, sleeping in the kernel as soon as the token is missing
-- The main thread sets one Event and waits for a second; an echo thread
-- waits for the first, clears it and sets the second. Each side clears the
-- Event it waited for before it sets the other, so no set is lost. The
-- figure is the best round's time per round trip (two wake-ups). Same work
-- as w9_event_pingpong.py.
local threading = require("threading")

local TRIPS, ROUNDS = 20000, 5

local function echo(ping, pong, trips)
  for _ = 1, trips do
    ping:wait()
    ping:clear()
    pong:set()
  end
end

local function round()
  local ping, pong = threading.Event(), threading.Event()
  local t = threading.start(echo, ping, pong, TRIPS)
  local t0 = threading.monotonic()
  for _ = 1, TRIPS do
    ping:set()
    pong:wait()
    pong:clear()
  end
  local dt = threading.monotonic() - t0
  assert(t:join(60))
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/round-trip lower", best / TRIPS * 1e6))
