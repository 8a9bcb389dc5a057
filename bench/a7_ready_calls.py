# A7: an asyncio task's calls that need not wait, 100,000 rounds of an
# uncontended Lock acquire and release, a Queue put and get, and the wait
# of an Event that is set (see a7_ready_calls.lua).
import asyncio
import time

N, ROUNDS = 100000, 5


async def one_round():
    lock, q, ev = asyncio.Lock(), asyncio.Queue(), asyncio.Event()
    ev.set()
    t0 = time.monotonic()
    for i in range(N):
        await lock.acquire()
        lock.release()
        await q.put(i)
        await q.get()
        await ev.wait()
    return time.monotonic() - t0


def main():
    best = min(asyncio.run(one_round()) for _ in range(ROUNDS))
    print(f"RESULT {best / N * 1e6:.2f} us/round lower")


main()
