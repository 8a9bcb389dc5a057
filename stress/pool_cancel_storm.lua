-- Stress: a pool's workers cancelled at random moments (before they run,
-- inside a task, idle) while submitters keep it busy. Every future ends
-- (done, or failed with "cancelled" when its worker was cut down under it),
-- the pool keeps its size, and shutdown returns with no worker left.
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local rounds = math.floor(2000 * scale)
local seed = tonumber(os.getenv("STRESS_SEED") or os.time())
math.randomseed(seed)

local pool = threading.Pool{ workers = 3, name = "storm" }
local futures, kills = {}, 0
local t0 = threading.monotonic()

-- the tasks: quick ones, sleeping ones, spinning ones, failing ones
local function task(kind, x)
  local th = require("threading")
  if kind == 1 then
    return x
  elseif kind == 2 then
    th.sleep(0.001)
    return x
  elseif kind == 3 then
    local n = 0
    for _ = 1, 20000 do n = n + 1 end
    return x
  end
  error("task " .. x .. " fails")
end

for round = 1, rounds do
  for _ = 1, math.random(4) do
    local kind = math.random(4)
    futures[#futures + 1] = { kind = kind, x = round, f = pool:submit(task, kind, round) }
  end
  if math.random() < 0.5 then
    local workers = {}
    for _, t in ipairs(threading.enumerate()) do
      if t.name:match("^storm_") then workers[#workers + 1] = t end
    end
    if #workers > 0 then
      workers[math.random(#workers)]:cancel()
      kills = kills + 1
    end
  end
  if math.random() < 0.3 then threading.sleep(math.random() * 0.002) end
end

local done, cut = 0, 0
for _, e in ipairs(futures) do
  local ok, v = e.f:result(30)
  assert(ok ~= nil, "a future never ended")
  if ok then
    assert(v == e.x, "a task returned a wrong value")
    done = done + 1
  elseif v == "cancelled" then
    cut = cut + 1
  else
    assert(e.kind == 4 and tostring(v):find("task " .. e.x .. " fails", 1, true),
           "a task failed otherwise: " .. tostring(v))
    done = done + 1
  end
end
assert(pool.workers <= 3, "the pool grew past its size")
local ok, v = pool:submit(function(y) return y * 2 end, 21):result(10)
assert(ok and v == 42, "the pool no longer runs tasks")
pool:shutdown()
assert(pool.workers == 0, "workers are left after shutdown: " .. pool.workers)
assert(#threading.enumerate() == 1, "threads are left: " .. #threading.enumerate())
print(("pool cancel storm: %d futures (%d cut short by %d worker cancels) in %.2f s;"
        .. " shutdown clean (seed %d)")
  :format(#futures, cut, kills, threading.monotonic() - t0, seed))
