-- bench: W8 | resident memory per thread, 200 threads blocked on an Event | <= 32 KiB
-- floor: state_openlibs threads bare | 200 pthreads on a condvar, each owning a bare state (no library)
-- floor: state_openlibs threads | the same, each state with every standard library opened
-- VmRSS (from /proc/self/status) before starting 200 threads and once all
-- of them are blocked, divided by 200. Each thread owns a lua_State with
-- the standard libraries opened. The threads wait on a threading.Event;
-- a build without Event makes them wait on a Lock held by the main thread
-- instead (same cost per thread). Same work as w8_thread_memory.py.
local threading = require("threading")

local THREADS = 200

local function rss_kib()
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("*a")
  f:close()
  return assert(tonumber(text:match("VmRSS:%s*(%d+)")), "no VmRSS in /proc/self/status")
end

local function settle()
  collectgarbage("collect")
  collectgarbage("collect")
end

-- gate: something a thread can block on until the main thread opens it
-- (close() makes it block again)
local gate, open, close, blocker
local is_event = threading.Event ~= nil
if is_event then
  gate = threading.Event()
  open = function() gate:set() end
  close = function() gate:clear() end
  blocker = "an Event"
else
  gate = threading.Lock()
  open = function() gate:release() end
  close = function() gate:acquire() end
  blocker = "a Lock (no threading.Event in this build)"
end
close()

-- the function each thread runs: say it is ready, then block
local function block(ready, g, on_event)
  ready:add(1)
  if on_event then
    g:wait()
  else
    g:acquire()
    g:release()
  end
end

local function wait_ready(ready, count)
  while ready:get() < count do
    threading.sleep(0.005)
  end
  threading.sleep(0.1) -- let the last ones reach their wait
end

-- warm up: one thread through the same path, so one-time costs (the
-- library's pages, the first state's allocations) are not counted
do
  local ready = threading.Value(0)
  local t = threading.start(block, ready, gate, is_event)
  wait_ready(ready, 1)
  open()
  assert(t:join())
  close()
end

local ready = threading.Value(0)
settle()
local before = rss_kib()
local threads = {}
for i = 1, THREADS do
  threads[i] = threading.start(block, ready, gate, is_event)
end
wait_ready(ready, THREADS)
settle()
local after = rss_kib()
open()
for i = 1, THREADS do
  assert(threads[i]:join())
end
io.stderr:write(string.format("w8: blocked on %s; VmRSS %d -> %d KiB\n",
  blocker, before, after))
print(string.format("RESULT %.1f KiB/thread lower", (after - before) / THREADS))
