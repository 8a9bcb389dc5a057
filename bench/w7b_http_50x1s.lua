-- bench: W7b | 50 threads each GET /delay/1 (total s) | no slower than Python
-- 50 threads each fetch /delay/1 from the local test server (bench/http_fanout.lua).
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("http_fanout")(50, "1")
