-- examples/10_crawler.lua: a small crawler in one Lua state. 200 coroutines
-- take pages from a shared queue of URLs, fetch them with threading.http
-- (each request suspends only its coroutine; libcurl runs all of them in
-- the scheduler's own thread) and queue the links they find, with at most
-- PER_HOST requests in flight to any one host, enforced by a Semaphore per
-- host.
--
--   lua examples/10_crawler.lua [PAGES]
--
-- The site is the project's local test server (built by make): page n is
-- /delay/0.1?page=n, which answers after 0.1 s and links to pages 2n and
-- 2n + 1 (the crawler reads n back from the echoed URL). 1,000 pages of
-- 0.1 s each take 100 s one after another; here about 1.2 s, the depth of
-- the tree (ten levels, each found only once its parent is fetched).
local threading = require("threading")
local async = require("threading.async")
local http = require("threading.http")

local PAGES = tonumber(arg and arg[1]) or 1000
local WORKERS, PER_HOST = 200, 200

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = package.path .. ";" .. dir .. "/../spec/support/?.lua"
local srv = require("server").start()

local function page_url(n)
  return ("%s/delay/0.1?page=%d"):format(srv.url, n)
end

-- The links of a fetched page: its children in a binary tree of PAGES pages.
local function links(body)
  local n = tonumber(body:match("page=(%d+)"))
  local out = {}
  for _, child in ipairs({ 2 * n, 2 * n + 1 }) do
    if child <= PAGES then
      out[#out + 1] = page_url(child)
    end
  end
  return out
end

local limits = {} -- host -> Semaphore
local function limit_for(url)
  local host = url:match("^%a+://([^/]+)")
  local sem = limits[host]
  if sem == nil then
    sem = threading.Semaphore(PER_HOST)
    limits[host] = sem
  end
  return sem
end

local t0 = threading.monotonic()
local fetched, failed, bytes = 0, 0, 0
local in_flight, most_in_flight = 0, 0

async.run(function()
  local todo = threading.Queue()
  local seen = { [page_url(1)] = true }
  todo:put(page_url(1))
  local pending = 1 -- queued or being fetched: the crawl ends at 0

  local function worker()
    for url in todo:iter() do
      local sem = limit_for(url)
      sem:acquire()
      in_flight = in_flight + 1
      most_in_flight = math.max(most_in_flight, in_flight)
      local r, err = http.get(url)
      in_flight = in_flight - 1
      sem:release()
      if r and r.status == 200 then
        fetched = fetched + 1
        bytes = bytes + #r.body
        for _, link in ipairs(links(r.body)) do
          if not seen[link] then
            seen[link] = true
            pending = pending + 1
            todo:put(link)
          end
        end
      else
        failed = failed + 1
        io.stderr:write(url, ": ", tostring(err or r.status), "\n")
      end
      if (fetched + failed) % 100 == 0 then
        print(("%4d pages, %3d in flight, %.2f s"):format(fetched + failed, in_flight,
          threading.monotonic() - t0))
      end
      pending = pending - 1
      if pending == 0 then
        todo:shutdown() -- every worker's iter ends
      end
    end
  end

  local workers = {}
  for i = 1, WORKERS do
    workers[i] = async.spawn(worker)
  end
  for i = 1, WORKERS do
    assert(workers[i]:await())
  end
end)

local elapsed = threading.monotonic() - t0
srv:stop()
print(("crawled %d pages (%d failed, %d KiB) in %.2f s, at most %d in flight, one Lua state")
  :format(fetched, failed, math.floor(bytes / 1024), elapsed, most_in_flight))
assert(fetched == PAGES and failed == 0, "the crawl missed pages")
