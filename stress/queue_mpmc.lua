-- Stress: 8 producers and 8 consumers through one bounded Queue; every
-- item arrives exactly once (counts and checksums match).
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local producers, consumers = 8, 8
local per = math.floor(2000000 * scale / producers)

local q = threading.Queue(1000)
local t0 = threading.monotonic()
-- Items are p * 1e7 + i; each consumer counts and sums them per producer
-- (sums stay exact in a double on every Lua).
local cons = {}
for c = 1, consumers do
  cons[c] = threading.start(function(queue, np)
    local counts, sums = {}, {}
    for p = 1, np do counts[p], sums[p] = 0, 0 end
    for item in queue:iter() do
      local p = math.floor(item / 1e7)
      counts[p] = counts[p] + 1
      sums[p] = sums[p] + item
    end
    return counts, sums
  end, q, producers)
end
local prods = {}
for p = 1, producers do
  prods[p] = threading.start(function(queue, base, n)
    for i = 1, n do queue:put(base + i) end
  end, q, p * 1e7, per)
end
for p = 1, producers do assert(prods[p]:join(600)) end
q:shutdown()           -- consumers drain what is left, then their loops end
local counts, sums = {}, {}
for p = 1, producers do counts[p], sums[p] = 0, 0 end
for c = 1, consumers do
  local ok, cs, ss = cons[c]:join(600)
  assert(ok, cs)
  for p = 1, producers do
    counts[p], sums[p] = counts[p] + cs[p], sums[p] + ss[p]
  end
end
local count = 0
for p = 1, producers do
  local want_sum = per * p * 1e7 + per * (per + 1) / 2
  assert(counts[p] == per, ("producer %d: %d items arrived, %d sent"):format(p, counts[p], per))
  assert(sums[p] == want_sum,
    ("producer %d: checksum differs: an item was lost, doubled or altered"):format(p))
  count = count + counts[p]
end
print(("queue mpmc: %d producers x %d consumers, %d items through Queue(1000) in %.2f s, checksums equal")
  :format(producers, consumers, count, threading.monotonic() - t0))
