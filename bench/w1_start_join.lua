-- bench: W1 | start+join 1000 threads, one after another | <= 1/3 of Python's time
-- floor: pthread_create_join serial | pthread_create + pthread_join of an empty thread, one after another
-- floor: state_openlibs time bare | luaL_newstate: a bare state (a Thread opens libraries on first use)
-- Each round starts a thread running an empty function and joins it before
-- starting the next, 1000 times; the figure is the best round's time per
-- thread. Same work as w1_start_join.py.
local threading = require("threading")

local THREADS, ROUNDS = 1000, 7

local function noop() end

local function round()
  local t0 = threading.monotonic()
  for _ = 1, THREADS do
    threading.Thread(noop):start():join()
  end
  return threading.monotonic() - t0
end

round() -- warm up: the allocator, the library's pages, the first stacks
local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/thread lower", best / THREADS * 1e6))
