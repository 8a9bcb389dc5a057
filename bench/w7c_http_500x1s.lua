-- bench: W7c | 500 threads each GET /delay/1 (total s; goal < 1.5 s) | no slower than Python
-- 500 threads each fetch /delay/1 from the local test server; the result is the
-- wall time from the first start to the last join. bench/w7c_http_500x1s.py does the
-- same with Python's threading and urllib.request.
local threading = require("threading")
local http = require("threading.http")

-- the test server helper lives in spec/support, next to this directory
package.path = package.path .. ";" .. ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../spec/support/?.lua")
local srv = require("server").start()

local function fetch(url)
  local r, err = http.get(url)
  if not r then
    error(err)
  end
  return r.status
end

local url = srv.url .. "/delay/1"
local t0 = threading.monotonic()
local threads = {}
for i = 1, 500 do
  threads[i] = threading.start(fetch, url)
end
for i = 1, 500 do
  local ok, status = threads[i]:join()
  assert(ok and status == 200, tostring(status))
end
local elapsed = threading.monotonic() - t0
srv:stop()
print(string.format("RESULT %.3f s lower", elapsed))
