-- bench: W3 | uncontended Lock acquire+release, 1,000,000 pairs | <= 1/2 of Python's time
-- floor: cmethod | obj:a() obj:b(), two empty C methods, under the same interpreter
-- floor: mutex_pair mutex | pthread_mutex_lock + pthread_mutex_unlock, from C
-- floor: mutex_pair cas | an atomic compare-and-swap + release store, from C
-- One thread takes and gives back a Lock nobody else wants, 1,000,000
-- times; the figure is the best round's time per pair, loop included. Same
-- work as w3_lock.py.
local threading = require("threading")

local PAIRS, ROUNDS = 1000000, 7

local function round()
  local lock = threading.Lock()
  local t0 = threading.monotonic()
  for _ = 1, PAIRS do
    lock:acquire()
    lock:release()
  end
  return threading.monotonic() - t0
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f ns/pair lower", best / PAIRS * 1e9))
