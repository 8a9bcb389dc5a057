-- bench: W12 | memory per item of a Queue holding 1,000,000 integers | <= 32 bytes/item
-- Resident memory grows by this much per item while 1,000,000 distinct
-- integers sit in an unbounded Queue (read from /proc/self/statm before and
-- after; Linux only). Same work as w12_queue_memory.py, which measures
-- Python's queue.Queue.
local threading = require("threading")

local N = 1000000

local function resident_bytes()
  local f = assert(io.open("/proc/self/statm", "r"))
  local _, resident = f:read("*n", "*n")
  f:close()
  return resident * 4096
end

collectgarbage()
collectgarbage()
local q = threading.Queue()
local before = resident_bytes()
for i = 1, N do
  q:put(1000000 + i)
end
local after = resident_bytes()
assert(q:qsize() == N)
print(string.format("RESULT %.1f bytes/item lower", (after - before) / N))
