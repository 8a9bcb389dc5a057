-- bench: W7a | 3 threads each GET /delay/2 (total s) | <= 2.05
-- 3 threads each fetch /delay/2 from the local test server (bench/http_fanout.lua).
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("http_fanout")(3, "2")
