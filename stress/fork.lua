-- Stress: fork while other threads start, end, queue and lock (through the
-- specs' testfork module, built by make into the build directory). Each
-- child starts threads of its own, uses a queue and a pool, and exits; every
-- child must end well and quickly, and the parent carries on.
local threading = require("threading")
local posix = require("testfork")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local rounds = math.floor(40 * scale)
local seed = tonumber(os.getenv("STRESS_SEED") or os.time())
math.randomseed(seed)

local stop = threading.Event()
local q = threading.Queue(64)
local pool = threading.Pool(2)
local churners = {}
for i = 1, 3 do
  churners[i] = threading.start(function(s, qq, p, kind)
    local th = require("threading")
    while not s:is_set() do
      if kind == 1 then
        th.start(function() end):join(10)
      elseif kind == 2 then
        qq:put(1, true, 0.01)
        qq:get(true, 0.01)
      else
        p:submit(function() return 1 end):result(1)
        th.enumerate()
      end
    end
  end, stop, q, pool, i)
end

-- A failure stops the churners before it is raised: they are not daemons,
-- and the exit would wait for them for ever.
local t0 = threading.monotonic()
local ok, err = pcall(function()
  for round = 1, rounds do
    threading.sleep(math.random() * 0.005)
    local pid = posix.fork()
    if pid == 0 then
      posix.alarm(20)
      local cok, cerr = pcall(function()
        assert(threading.active_count() == 1, "ghost threads: " .. threading.active_count())
        local cq = threading.Queue()
        local ts = {}
        for i = 1, 4 do ts[i] = threading.start(function(qq, n) qq:put(n) end, cq, i) end
        for i = 1, 4 do assert(ts[i]:join(10)) end
        local sum = 0
        for _ = 1, 4 do sum = sum + cq:get(5) end
        assert(sum == 10)
        local fok, v = pool:submit(function() return round end):result(10)
        assert(fok and v == round, "pool task: " .. tostring(v))
      end)
      if not cok then io.stderr:write("child ", round, ": ", tostring(cerr), "\n") end
      posix._exit(cok and 0 or 1)
    end
    local status = posix.waitpid(pid)
    assert(status == 0, ("child %d ended with status %d (seed %d)"):format(round, status, seed))
  end
end)
stop:set()
for _, t in ipairs(churners) do assert(t:join(10)) end
if not ok then error(err, 0) end
pool:shutdown()
print(("fork: %d children forked amid busy threads, each started threads and used a pool,"
        .. " in %.2f s (seed %d)")
  :format(rounds, threading.monotonic() - t0, seed))
