# A8: two asyncio tasks take turns through two asyncio.Queue, 20,000 round
# trips; time per handoff (see a8_task_handoff.lua).
import asyncio
import time

N, ROUNDS = 20000, 5


async def one_round():
    ping, pong = asyncio.Queue(), asyncio.Queue()
    t0 = time.monotonic()

    async def a():
        for i in range(N):
            await ping.put(i)
            await pong.get()

    async def b():
        for i in range(N):
            await ping.get()
            await pong.put(i)

    await asyncio.gather(a(), b())
    return time.monotonic() - t0


def main():
    best = min(asyncio.run(one_round()) for _ in range(ROUNDS))
    print(f"RESULT {best / (2 * N) * 1e6:.2f} us/handoff lower")


main()
