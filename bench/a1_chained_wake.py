# A1: chained wake, 1,000 asyncio tasks each awaiting its own Event, set one
# at a time from a thread that waits for each acknowledgement
# (see a1_chained_wake.lua). A1_N sets the number of tasks.
import asyncio
import os
import queue
import threading
import time

N = int(os.environ.get("A1_N", "1000"))
ROUNDS = 3


async def one_round():
    loop = asyncio.get_running_loop()
    events = [asyncio.Event() for _ in range(N)]
    ack = queue.Queue()

    async def waiter(e, n):
        await e.wait()
        ack.put(n)

    tasks = [asyncio.create_task(waiter(events[i], i)) for i in range(N)]
    await asyncio.sleep(0)
    result = []

    def setter():
        t0 = time.monotonic()
        for i in range(N):
            loop.call_soon_threadsafe(events[i].set)
            assert ack.get() == i
        result.append(time.monotonic() - t0)

    t = threading.Thread(target=setter)
    t.start()
    await asyncio.gather(*tasks)
    await asyncio.to_thread(t.join)
    return result[0]


async def main():
    best = min([await one_round() for _ in range(ROUNDS)])
    print(f"RESULT {best / N * 1e6:.2f} us/wake lower")


asyncio.run(main())
