-- Stress: start and join many threads one after another; resident memory
-- must stay flat once warmed up.
local threading = require("threading")
local scale = tonumber(os.getenv("STRESS_SCALE") or "1")
local total = math.floor(20000 * scale)

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function batch(n)
  for i = 1, n do
    local t = threading.start(function(x) return x + 1 end, i)
    local ok, v = t:join(30)
    assert(ok and v == i + 1, "thread " .. i .. " returned " .. tostring(v))
  end
end

local warm = math.max(1, math.floor(total / 10))
local t0 = threading.monotonic()
batch(warm)
collectgarbage()
local after_warmup = rss_kib()
batch(total - warm)
collectgarbage()
local at_end = rss_kib()
local growth = at_end - after_warmup
print(("threads: %d started and joined in %.2f s; RSS after warm-up %d KiB, at end %d KiB, growth %d KiB")
  :format(total, threading.monotonic() - t0, after_warmup, at_end, growth))
assert(growth < 2048, "resident memory grew by " .. growth .. " KiB")
