-- bench: W17 | as_completed over 4,000 futures, ended one at a time by a thread | <= 1/2 of Python's time
-- The main thread loops over threading.as_completed(futures) and puts each
-- future's number on an acknowledgement Queue; a thread completes the
-- futures (threading.Future(), set_result) one at a time and waits for each
-- acknowledgement before the next. The figure is the best round's time per
-- future (set_result to acknowledgement). Each step of the loop costs one
-- wake-up whatever the number left, so the figure should not grow with
-- W17_N. Same work as w17_as_completed.py (concurrent.futures.as_completed
-- over concurrent.futures.Future objects).
local threading = require("threading")

local N = tonumber(os.getenv("W17_N") or "4000")
local ROUNDS = 3

local function round()
  local futures, ack, number = {}, threading.Queue(), {}
  for i = 1, N do
    futures[i] = threading.Future()
    number[futures[i]] = i
  end
  local setter = threading.start(function(fs, q, n)
    local th = require("threading")
    local t0 = th.monotonic()
    for i = 1, n do
      fs[i]:set_result(i)
      assert(q:get() == i)
    end
    return th.monotonic() - t0
  end, futures, ack, N)
  local seen = 0
  for f in threading.as_completed(futures) do
    seen = seen + 1
    ack:put(number[f])
  end
  assert(seen == N)
  local _, dt = setter:join()
  return dt
end

local best = math.huge
for _ = 1, ROUNDS do
  best = math.min(best, round())
end
print(string.format("RESULT %.2f us/future lower", best / N * 1e6))
