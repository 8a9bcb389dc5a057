# A4: 1,000 asyncio tasks on an asyncio.Queue, an asyncio.Condition and an
# asyncio.Lock, fed by 4 threads through call_soon_threadsafe and
# run_coroutine_threadsafe (see a4_mixed.lua). The threads' own lock is a
# threading.Lock: asyncio's cannot be taken from a thread.
import asyncio
import queue
import threading
import time

TASKS, PER_TASK, THREADS, RUNS = 1000, 10, 4, 3
ITEMS = TASKS * PER_TASK


async def one_run():
    loop = asyncio.get_running_loop()
    qin, qout = asyncio.Queue(), queue.Queue()
    cond, lock, tlock = asyncio.Condition(), asyncio.Lock(), threading.Lock()
    state = {"credits": 0, "total": 0}

    async def grant():
        async with cond:
            state["credits"] += 1
            cond.notify()

    def feeder(k):
        for i in range(k):
            loop.call_soon_threadsafe(qin.put_nowait, i)
            asyncio.run_coroutine_threadsafe(grant(), loop)
        for _ in range(k):
            qout.get()
            with tlock:
                state["total"] -= 1

    async def task():
        for _ in range(PER_TASK):
            x = await qin.get()
            async with cond:
                while state["credits"] == 0:
                    await cond.wait()
                state["credits"] -= 1
            async with lock:
                state["total"] += 1
            qout.put_nowait(x)

    t0 = time.monotonic()
    tasks = [asyncio.create_task(task()) for _ in range(TASKS)]
    threads = [threading.Thread(target=feeder, args=(ITEMS // THREADS,))
               for _ in range(THREADS)]
    for t in threads:
        t.start()
    await asyncio.gather(*tasks)
    await loop.run_in_executor(None, lambda: [t.join() for t in threads])
    dt = time.monotonic() - t0
    assert state["credits"] == 0
    return dt


async def main():
    best = min([await one_run() for _ in range(RUNS)])
    print(f"RESULT {ITEMS / best:.0f} rounds/s higher")


asyncio.run(main())
