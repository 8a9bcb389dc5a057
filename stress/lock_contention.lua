-- Stress: many threads contend for one Lock; inside the critical section
-- each checks that it alone is there.
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local nthreads = 64
local total = math.floor(1000000 * scale)
local per = math.floor(total / nthreads)

local lock = threading.Lock()
local owner = threading.Value(0)
local count = threading.Value(0)
local t0 = threading.monotonic()
local threads = {}
for id = 1, nthreads do
  threads[id] = threading.start(function(l, o, c, me, n)
    for _ = 1, n do
      l:acquire()
      if o:get() ~= 0 then error("lock held by " .. o:get() .. " while " .. me .. " entered") end
      o:set(me)
      c:set(c:get() + 1)
      if o:get() ~= me then error("owner changed under " .. me) end
      o:set(0)
      l:release()
    end
  end, lock, owner, count, id, per)
end
for id = 1, nthreads do
  local ok, err = threads[id]:join(600)
  assert(ok, err)
end
assert(count:get() == per * nthreads, "count " .. count:get() .. " ~= " .. per * nthreads)
print(("lock contention: %d threads x %d acquisitions in %.2f s, owner check held")
  :format(nthreads, per, threading.monotonic() - t0))
