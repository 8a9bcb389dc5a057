-- examples/06_producer_consumer.lua: a three-stage pipeline joined by queues.
--
--   generate --> [jobs] --> 3 workers --> [results] --> collect
--
-- The generator puts ranges of numbers into a bounded Queue (so it can
-- never run far ahead of the workers); each worker counts the primes in a
-- range and puts {first, count} on a second Queue; the main thread collects.
-- Shutdown flows down the pipeline as in Python 3.13: the generator calls
-- jobs:shutdown() when it is done, each worker's `for ... in jobs:iter()`
-- ends once the queue is drained, and the last worker to finish shuts the
-- results queue, which ends the collector's loop. Nothing is lost and no
-- thread is left waiting.
--
--   lua examples/06_producer_consumer.lua

local threading = require("threading")

local LIMIT, STEP, WORKERS = 2000000, 50000, 3

local jobs = threading.Queue(WORKERS * 2)      -- bounded: back-pressure
local results = threading.Queue()
local finished = threading.Value(0)            -- workers that are done

-- Stage 1: cut [1, LIMIT] into ranges.
local function generate(out, limit, step)
  for first = 1, limit, step do
    out:put({ first, math.min(first + step - 1, limit) })
  end
  out:shutdown()                               -- no more jobs: drain, then stop
end

-- Stage 2: count primes in each range (CPU work, really parallel here).
local function work(inbox, outbox, done, nworkers)
  local function is_prime(n)
    if n < 2 then return false end
    if n % 2 == 0 then return n == 2 end
    for d = 3, math.floor(math.sqrt(n)), 2 do
      if n % d == 0 then return false end
    end
    return true
  end
  for job in inbox:iter() do                   -- ends when jobs is shut and empty
    local count = 0
    for n = job[1], job[2] do
      if is_prime(n) then count = count + 1 end
    end
    outbox:put({ job[1], count })
    inbox:task_done()
  end
  if done:add(1) == nworkers then              -- the last worker out
    outbox:shutdown()
  end
end

local t0 = threading.monotonic()
local generator = threading.Thread{ name = "generator", target = generate,
                                    args = { jobs, LIMIT, STEP } }:start()
local workers = {}
for i = 1, WORKERS do
  workers[i] = threading.Thread{ name = "worker-" .. i, target = work,
                                 args = { jobs, results, finished, WORKERS } }:start()
end

-- Stage 3: collect in the main thread.
local total, ranges = 0, 0
for item in results:iter() do                  -- ends when results is shut and empty
  total = total + item[2]
  ranges = ranges + 1
end

assert(generator:join(60))
for _, w in ipairs(workers) do
  assert(w:join(60))
end
assert(jobs:join(0), "every job was marked done")

print(("%d primes below %d, counted in %d ranges by %d workers in %.2f s")
  :format(total, LIMIT, ranges, WORKERS, threading.monotonic() - t0))
