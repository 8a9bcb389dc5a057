-- bench: W7d | 10,000 sequential GET /get, one thread, kept-alive (req/s) | no slower than Python
-- One thread sends 10,000 requests one after another; threading.http keeps
-- the connection of its state open between them. bench/w7d_http_sequential.py
-- does the same with http.client, the part of Python's standard library that
-- keeps a connection alive (urllib.request opens one per request).
local threading = require("threading")
local http = require("threading.http")

package.path = package.path .. ";" .. ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../spec/support/?.lua")
local srv = require("server").start()

local N = 10000
local url = srv.url .. "/get"
assert(http.get(url))                 -- connect before the clock starts
local t0 = threading.monotonic()
for _ = 1, N do
  local r, err = http.get(url)
  if not r or r.status ~= 200 then
    error(err or r.status)
  end
end
local elapsed = threading.monotonic() - t0
srv:stop()
print(string.format("RESULT %.0f req/s higher", N / elapsed))
