-- examples/01_threads.lua: the Python threading tutorial's first demo in Lua.
--
-- Two workers each sleep for 2 s. They run at the same time, so the whole
-- script takes about 2 s, not 4.
--
--   lua examples/01_threads.lua
--
-- The Python original is in the comments on the right.

local threading = require("threading")     -- import threading
local sleep = threading.sleep               -- import time (time.sleep)
local now = threading.monotonic             -- (time.monotonic, for the timing)

-- One write call per line: two threads printing at the same moment can
-- then never mix their lines (print writes its text and the newline apart).
local function say(line)
  io.write(line .. "\n")
  io.flush()
end

local function worker(name)                 -- def worker(name):
  say(name .. " starting")                  --     print(f"{name} starting")
  sleep(2)                                  --     time.sleep(2)
  say(name .. " done")                      --     print(f"{name} done")
end

local start = now()

-- Create threads. The function and its arguments are copied into the new
-- thread's own Lua state (so are the upvalues `say` and `sleep`).
local t1 = threading.Thread(worker, "Thread-1")  -- t1 = threading.Thread(target=worker, args=("Thread-1",))
local t2 = threading.Thread{target = worker, args = {"Thread-2"}}  -- the keyword form, as in Python

-- Start threads
t1:start()                                  -- t1.start()
t2:start()                                  -- t2.start()

-- Wait for threads to finish
t1:join()                                   -- t1.join()
t2:join()                                   -- t2.join()

say("All threads finished")                 -- print("All threads finished")
say(string.format("Elapsed: %.2f s (the two 2 s sleeps overlapped)", now() - start))
