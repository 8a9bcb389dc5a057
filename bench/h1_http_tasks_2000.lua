-- bench: H1 | 2,000 tasks in one state each GET /delay/1 (total s) | <= 1.5 s, <= 4 threads added
-- One scheduler, 2,000 tasks, one request each, all in flight at once
-- (bench/http_tasks.lua). Python's side: asyncio, each task writing a raw
-- HTTP/1.1 GET on asyncio.open_connection (the standard library has no
-- asynchronous HTTP client). The threads added and the memory growth go to
-- stderr.
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
local elapsed, threads, kib = require("http_tasks")(2000, 1)
io.stderr:write(("H1: %d OS threads added, resident memory grew %d KiB (%.1f KiB per request)\n")
  :format(threads, kib, kib / 2000))
print(string.format("RESULT %.3f s lower", elapsed))
