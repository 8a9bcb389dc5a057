"""L1: an asyncio heartbeat every 10 ms while 1,000 executor futures complete: worst gap (ms)."""
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

N, WORKERS, PERIOD = 1000, 4, 0.010


async def main():
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(WORKERS)
    state = {"worst": 0.0, "last": None, "ticks": 0, "on": True}

    def tick():
        now = time.monotonic()
        if state["last"] is not None:
            state["worst"] = max(state["worst"], now - state["last"])
        state["last"] = now
        state["ticks"] += 1
        if state["on"]:
            loop.call_later(PERIOD, tick)

    loop.call_later(PERIOD, tick)
    await asyncio.gather(*[loop.run_in_executor(pool, time.sleep, 0.002) for _ in range(N)])
    state["on"] = False
    pool.shutdown()
    return state


state = asyncio.run(main())
sys.stderr.write("L1: %d ticks, worst gap %.2f ms\n" % (state["ticks"], state["worst"] * 1000))
print("RESULT %.2f ms lower" % (state["worst"] * 1000))
