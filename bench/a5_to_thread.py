# A5: asyncio.to_thread round trip of an empty function, 5,000 calls in a
# row from one task (see a5_to_thread.lua).
import asyncio
import time

CALLS, ROUNDS = 5000, 5


def noop():
    pass


async def one_round():
    t0 = time.monotonic()
    for _ in range(CALLS):
        await asyncio.to_thread(noop)
    return time.monotonic() - t0


async def main():
    await one_round()  # warm up
    best = min([await one_round() for _ in range(ROUNDS)])
    print(f"RESULT {best / CALLS * 1e6:.2f} us/call lower")


asyncio.run(main())
