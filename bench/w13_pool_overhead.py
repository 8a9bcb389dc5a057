# W13: submit + result of an empty function, 100,000 tasks, on a
# ThreadPoolExecutor of 2 workers (see w13_pool_overhead.lua).
import time
from concurrent.futures import ThreadPoolExecutor

TASKS, ROUNDS = 100000, 5


def noop():
    pass


def one_round(pool):
    t0 = time.monotonic()
    futures = [pool.submit(noop) for _ in range(TASKS)]
    for f in futures:
        f.result()
    return time.monotonic() - t0


with ThreadPoolExecutor(2) as pool:
    one_round(pool)  # warm up
    best = min(one_round(pool) for _ in range(ROUNDS))
print(f"RESULT {best / TASKS * 1e6:.2f} us/task lower")
