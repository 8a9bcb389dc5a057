-- bench: H2 | 10,000 sequential GET /get from one task, kept-alive (req/s) | within 10% of W7d
-- One task sends 10,000 requests one after another; each goes to the I/O
-- thread and back, and the connection stays open between them. W7d is the
-- same loop on the blocking path from a thread; the figure of that path,
-- measured in the same process just before, goes to stderr with the ratio.
-- Python's side: one asyncio task, raw HTTP/1.1 on one kept-alive stream.
local threading = require("threading")
local async = require("threading.async")
local http = require("threading.http")

package.path = package.path .. ";" .. ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../spec/support/?.lua")
local srv = require("server").start()

local N = 10000
local url = srv.url .. "/get"

local function loop()
  assert(http.get(url))             -- connect before the clock starts
  local t0 = threading.monotonic()
  for _ = 1, N do
    local r, err = http.get(url)
    if not r or r.status ~= 200 then
      error(err or r.status)
    end
  end
  return N / (threading.monotonic() - t0)
end

local blocking = loop()
local in_task = async.run(loop)
srv:stop()
io.stderr:write(("H2: blocking path %.0f req/s, in a task %.0f req/s (%.2fx)\n")
  :format(blocking, in_task, in_task / blocking))
print(string.format("RESULT %.0f req/s higher", in_task))
