-- bench: W7c | 500 threads each GET /delay/1 (total s; goal < 1.5 s) | no slower than Python
-- 500 threads each fetch /delay/1 from the local test server (bench/http_fanout.lua).
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("http_fanout")(500, "1")
