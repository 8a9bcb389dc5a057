# A2: the tax of an idle asyncio loop (1,000 tasks awaiting idle queues, in
# its own thread) on a ping-pong between two other threads: time per round
# trip beside it over alone (see a2_scheduler_tax.lua).
import asyncio
import queue
import threading
import time

TRIPS, ROUNDS, TASKS = 20000, 3, 1000


def pingpong():
    ping, pong = queue.Queue(), queue.Queue()

    def echo():
        for _ in range(TRIPS):
            pong.put(ping.get())

    t = threading.Thread(target=echo)
    t.start()
    t0 = time.monotonic()
    for i in range(TRIPS):
        ping.put(i)
        pong.get()
    dt = time.monotonic() - t0
    t.join()
    return dt


def best():
    return min(pingpong() for _ in range(ROUNDS))


alone = best()
ready = threading.Event()
state = {}


def loop_thread():
    async def main():
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = asyncio.Event()
        qs = [asyncio.Queue() for _ in range(TASKS)]
        tasks = [asyncio.create_task(q.get()) for q in qs]
        await asyncio.sleep(0)
        ready.set()
        await state["stop"].wait()
        for t in tasks:
            t.cancel()

    asyncio.run(main())


lt = threading.Thread(target=loop_thread)
lt.start()
ready.wait()
beside = best()
state["loop"].call_soon_threadsafe(state["stop"].set)
lt.join()
print(f"RESULT {beside / alone:.3f} x lower")
