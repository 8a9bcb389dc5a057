# A3: CPU used by an asyncio loop thread with 1,000 tasks awaiting idle
# queues while two other threads ping-pong for about 2 seconds, as a
# percentage of the wall time (see a3_idle_cost.lua).
import asyncio
import queue
import threading
import time

TASKS, SECONDS = 1000, 2


def cpu_ns(tid):
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        return int(f.readline().split()[0])


ready = threading.Event()
state = {}


def loop_thread():
    state["tid"] = threading.get_native_id()

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
ping, pong = queue.Queue(), queue.Queue()


def echo():
    while True:
        v = ping.get()
        if v is None:
            return
        pong.put(v)


et = threading.Thread(target=echo)
et.start()
c0, t0 = cpu_ns(state["tid"]), time.monotonic()
while time.monotonic() - t0 < SECONDS:
    for i in range(1000):
        ping.put(i)
        pong.get()
used, wall = cpu_ns(state["tid"]) - c0, time.monotonic() - t0
ping.put(None)
et.join()
state["loop"].call_soon_threadsafe(state["stop"].set)
lt.join()
print(f"RESULT {used / 1e9 / wall * 100:.3f} % lower")
