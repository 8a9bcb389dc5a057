# W14: map x -> x * 2 + 1 over 1,000,000 integers in chunks of 10,000 on a
# ThreadPoolExecutor of 2 workers (see w14_pool_map.lua). The executor's own
# map ignores chunksize for threads, so the chunks are cut here.
import time
from concurrent.futures import ThreadPoolExecutor

N, CHUNK, ROUNDS = 1000000, 10000, 3


def f(x):
    return x * 2 + 1


def run_chunk(items):
    return [f(x) for x in items]


items = list(range(1, N + 1))


def one_round(pool):
    t0 = time.monotonic()
    chunks = [items[i:i + CHUNK] for i in range(0, N, CHUNK)]
    result = []
    for part in pool.map(run_chunk, chunks):
        result.extend(part)
    dt = time.monotonic() - t0
    assert len(result) == N and result[0] == 3 and result[-1] == N * 2 + 1
    return dt


with ThreadPoolExecutor(2) as pool:
    best = min(one_round(pool) for _ in range(ROUNDS))
print(f"RESULT {best * 1e3:.1f} ms lower")
