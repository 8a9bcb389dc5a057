-- bench: H3 | 10,000 tasks each GET /delay/1: memory per request (KiB) | <= 1/4 of a thread (W8)
-- As H1 with 10,000 tasks (bench/http_tasks.lua): the figure is the growth
-- of resident memory divided by the requests in flight. A thread per
-- request costs what W8 measures (about 40 KiB); the target is a quarter
-- of that. The wall time and the threads added go to stderr.
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
local N = 10000
local elapsed, threads, kib = require("http_tasks")(N, 1)
io.stderr:write(("H3: %.3f s, %d OS threads added\n"):format(elapsed, threads))
print(string.format("RESULT %.2f KiB/request lower", kib / N))
