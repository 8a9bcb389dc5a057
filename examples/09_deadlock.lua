-- Two threads take two locks in opposite order and deadlock; the
-- diagnostics explain it, and cancel ends it.
--
--   alice: take A, then B        bob: take B, then A
--
-- Each gets its first lock, then waits forever for the other's.
local threading = require("threading")

local lock_a, lock_b = threading.Lock(), threading.Lock()
local holding = threading.Value(0)   -- how many have their first lock

local function worker(first, second, count)
  first:acquire()
  count:add(1)
  while count:get() < 2 do end       -- make sure both hold their first lock
  second:acquire()                   -- never returns: the other holds it
  second:release()
  first:release()
end

local alice = threading.Thread{ name = "alice", target = worker, args = { lock_a, lock_b, holding } }:start()
local bob = threading.Thread{ name = "bob", target = worker, args = { lock_b, lock_a, holding } }:start()

-- Poll the wait-for graph until the cycle shows (bounded: about 5 s).
local cycles = {}
for _ = 1, 500 do
  cycles = threading.deadlocks()
  if #cycles > 0 then break end
  threading.sleep(0.01)
end

print("threading.waits():")
for _, w in ipairs(threading.waits()) do
  print(("  %-10s %-8s blocked on %-28s owner %s"):format(
    w.name, w.status, tostring(w.blocked_on or "-"), tostring(w.owner or "-")))
end

print("threading.deadlocks():")
for i, cycle in ipairs(cycles) do
  print(("  cycle %d: %s"):format(i, table.concat(cycle.threads, " -> ")))
  print("    " .. cycle.description)
end

-- A thread blocked in acquire is at a cancellation point: cancel both.
alice:cancel()
bob:cancel()
print("alice:", alice:join(5))
print("bob:  ", bob:join(5))
print(#cycles == 1 and "deadlock found and broken" or "no deadlock found")
