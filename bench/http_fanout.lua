-- The Lua side of W7a-W7c: n threads each fetch /delay/<delay> from the
-- local test server; prints the wall time from the first start to the
-- last join. bench/http_fanout.py does the same with Python's threading and
-- urllib.request.
local threading = require("threading")
local http = require("threading.http")

local function fetch(url)
  local r, err = http.get(url)
  if not r then
    error(err)
  end
  return r.status
end

return function(n, delay)
  -- the test server helper lives in spec/support, next to this directory
  package.path = package.path .. ";" .. ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../spec/support/?.lua")
  local srv = require("server").start()
  local url = srv.url .. "/delay/" .. delay
  local t0 = threading.monotonic()
  local threads = {}
  for i = 1, n do
    threads[i] = threading.start(fetch, url)
  end
  for i = 1, n do
    local ok, status = threads[i]:join()
    assert(ok and status == 200, tostring(status))
  end
  local elapsed = threading.monotonic() - t0
  srv:stop()
  print(string.format("RESULT %.3f s lower", elapsed))
end
