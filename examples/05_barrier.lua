-- examples/05_barrier.lua: a computation in phases across threads.
--
-- Heat spreads along a rod of 24 cells. Each step, every cell's new
-- temperature is computed from its own and its neighbours' current ones.
-- Four threads each own six cells. No thread may start step k+1 before all
-- have finished step k, and the new values may replace the current ones
-- only once all are computed: a Barrier gives both. Its action runs in one
-- thread (the last to arrive) after everyone has arrived and before anyone
-- goes on, so it is the place to publish the step and print the rod.
--
--   lua examples/05_barrier.lua

local threading = require("threading")

local WORKERS, CELLS, STEPS = 4, 24, 12
local SHADES = { " ", ".", ":", "-", "=", "+", "*", "#", "%", "@" }

-- shared state: one Value per cell, for the current and the next step
local cur, nxt = {}, {}
for i = 1, CELLS do
  cur[i] = threading.Value(0.0)
  nxt[i] = threading.Value(0.0)
end
cur[CELLS / 2]:set(1000.0)               -- a hot spot in the middle
cur[CELLS / 2 + 1]:set(1000.0)

local step = threading.Value(0)

local function draw()
  local row, total = {}, 0
  for i = 1, CELLS do
    local v = cur[i]:get()
    total = total + v
    row[i] = SHADES[math.min(#SHADES, 1 + math.floor(v / 40))]
  end
  return "|" .. table.concat(row) .. "|", total
end

-- The barrier's action: publish the new values, then show them. (It is
-- copied into the thread that runs it; the Values it uses are shared.)
local function publish()
  for i = 1, CELLS do
    cur[i]:set(nxt[i]:get())
  end
  local n = step:add(1)
  local row, total = draw()
  print(("step %2d %s  heat %.0f  (published by %s)"):format(n, row, total,
    threading.current_thread().name))
end

local barrier = threading.Barrier(WORKERS, publish)

local function worker(first, last)
  for _ = 1, STEPS do
    for i = first, last do
      local left = i > 1 and cur[i - 1]:get() or cur[i]:get()     -- insulated ends
      local right = i < CELLS and cur[i + 1]:get() or cur[i]:get()
      nxt[i]:set((left + 2 * cur[i]:get() + right) / 4)
    end
    assert(barrier:wait(10))             -- everyone's cells are done
  end
end

print(("step  0 %s  heat %.0f"):format(draw()))
local per = CELLS / WORKERS
local threads = {}
for w = 1, WORKERS do
  threads[w] = threading.Thread { target = worker, args = { (w - 1) * per + 1, w * per },
                                  name = "worker-" .. w }:start()
end
for _, t in ipairs(threads) do
  assert(t:join())
end
print(("%d steps by %d threads; the heat is conserved, only spread out."):format(step:get(), WORKERS))
