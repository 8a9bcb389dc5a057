-- examples/02_lock_counter.lua: the Python threading tutorial's second demo.
--
-- Two threads each add 1 to a shared counter 100,000 times. With the lock
-- the result is always 200000.
--
--   lua examples/02_lock_counter.lua            -- with the lock: 200000
--   lua examples/02_lock_counter.lua --no-lock  -- without: usually less
--
-- The one real difference from Python: a thread does not see the main
-- script's variables. Its function and upvalues are copied into its own Lua
-- state, so a plain `local counter = 0` would give each thread a private
-- copy. A threading.Value is a shared object: every copy of its handle
-- refers to the same value, which is what Python's global `counter` is.

local threading = require("threading")      -- import threading

local use_lock = arg[1] ~= "--no-lock"
local INCREMENTS = 100000

local counter = threading.Value(0)          -- counter = 0
local lock = threading.Lock()               -- lock = threading.Lock()

-- `with lock:` becomes acquire ... release. (lock:with(fn) is the closest
-- spelling of the with-block, and on Lua 5.4 `local _ <close> = lock:guard()`
-- releases at the end of the scope; the explicit pair is the fastest.)
local function increment()                  -- def increment():
  for _ = 1, INCREMENTS do                  --     for _ in range(100000):
    lock:acquire()                          --         with lock:
    counter:set(counter:get() + 1)          --             counter += 1
    lock:release()
  end
end

local function increment_unlocked()
  for _ = 1, INCREMENTS do
    counter:set(counter:get() + 1)          -- read, then write: not atomic
  end
end

local body = use_lock and increment or increment_unlocked

local t1 = threading.Thread(body)           -- t1 = threading.Thread(target=increment)
local t2 = threading.Thread(body)           -- t2 = threading.Thread(target=increment)

t1:start()                                  -- t1.start()
t2:start()                                  -- t2.start()
t1:join()                                   -- t1.join()
t2:join()                                   -- t2.join()

print("Counter: " .. counter:get())         -- print("Counter:", counter)

if not use_lock then
  local lost = 2 * INCREMENTS - counter:get()
  print(string.format([[
Without the lock, %d of the %d increments were lost.
Each get() and each set() is atomic on its own, but `set(get() + 1)` is two
steps: a thread reads 41, the other thread also reads 41 and writes 42, and
then the first writes 42 too: one increment vanished. Lua has no GIL, so the
two threads really run at once on a multi-core machine and this happens
often (on a single core it needs an unlucky switch between the two steps).
The lock makes the read-and-write one step no other thread can split.
For a single counter, counter:add(1) does the same without a Lock: the Value
adds under its own mutex and never loses an update.]], lost, 2 * INCREMENTS))
end
