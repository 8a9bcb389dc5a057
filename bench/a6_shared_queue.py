# A6: 1,000 asyncio tasks loop on one asyncio.Queue; a thread puts 5,000
# items through call_soon_threadsafe, one at a time, each acknowledged on a
# queue.Queue (see a6_shared_queue.lua).
import asyncio
import os
import queue
import threading
import time

N = int(os.environ.get("A6_N", "1000"))
ITEMS, ROUNDS = 5000, 3


async def one_round():
    loop = asyncio.get_running_loop()
    q, ack = asyncio.Queue(), queue.Queue()

    async def worker():
        while True:
            x = await q.get()
            if x == 0:
                return
            ack.put(x)

    tasks = [asyncio.create_task(worker()) for _ in range(N)]
    await asyncio.sleep(0)
    out = {}

    def feed():
        t0 = time.monotonic()
        for i in range(1, ITEMS + 1):
            loop.call_soon_threadsafe(q.put_nowait, i)
            assert ack.get() == i
        out["dt"] = time.monotonic() - t0
        for _ in range(N):
            loop.call_soon_threadsafe(q.put_nowait, 0)

    t = threading.Thread(target=feed)
    t.start()
    await asyncio.gather(*tasks)
    t.join()
    return out["dt"]


async def main():
    best = min([await one_round() for _ in range(ROUNDS)])
    print(f"RESULT {best / ITEMS * 1e6:.2f} us/item lower")


asyncio.run(main())
