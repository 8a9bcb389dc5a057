--- Demo 3 of the tutorial: I/O-bound work (web requests) in threads.
--
--   lua examples/03_io_bound.lua [--compare] [URL...]
--
-- Fetches each URL in its own thread, prints "URL -> status" as each one
-- answers, then the total time. Without URLs it starts the project's local
-- test server and fetches three of its /delay/2 pages, each of which answers
-- after two seconds: the waits overlap, so the threaded run takes about 2 s.
-- With --compare it then fetches the same URLs one after another, which
-- takes about 6 s. (The tutorial's https://httpbin.org/delay/2 works the same
-- way when the machine is online.)
local threading = require("threading")
local http = require("threading.http")

-- One request; the thread's result is the line it printed. Each line goes
-- out in one write, so lines from different threads never mix.
local function fetch(url)
  local r, err = http.get(url)
  local line = url .. " -> " .. (r and tostring(r.status) or ("error: " .. err))
  io.stdout:write(line, "\n")
  return line
end

-- The local test server, found next to this script when `server` is not on
-- package.path already.
local function start_local_server()
  local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  package.path = package.path .. ";" .. dir .. "/../spec/support/?.lua"
  return require("server").start()
end

local compare, urls = false, {}
for _, a in ipairs(arg or {}) do
  if a == "--compare" then
    compare = true
  else
    urls[#urls + 1] = a
  end
end

local srv
if #urls == 0 then
  srv = start_local_server()
  for i = 1, 3 do
    urls[i] = srv.url .. "/delay/2"
  end
end

local start = threading.monotonic()
local threads = {}
for i, url in ipairs(urls) do
  threads[i] = threading.start(fetch, url)
end
for i, t in ipairs(threads) do
  local ok, err = t:join()
  if not ok then
    print(urls[i] .. " -> failed: " .. tostring(err))
  end
end
print(string.format("Total time with %d threads: %.2f s", #urls, threading.monotonic() - start))

if compare then
  start = threading.monotonic()
  for _, url in ipairs(urls) do
    fetch(url)
  end
  print(string.format("Total time one after another: %.2f s", threading.monotonic() - start))
end

if srv then
  srv:stop()
end
