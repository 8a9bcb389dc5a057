# W15: 16 CPU-bound items mapped on a ThreadPoolExecutor of 2 workers vs
# one worker (see w15_pool_cpu.lua; the item length is calibrated the same way).
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ITEMS, ITEM_SECONDS, ROUNDS = 16, 0.1, 3


def work(n):
    s = 0
    for i in range(1, n + 1):
        s = (s + i * i) % 1000003
    return s


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(2) as two:
    n = 100000
    while True:
        dt = timed(lambda: one.submit(work, n).result())
        if dt >= 0.05:
            n = int(n * ITEM_SECONDS / dt)
            break
        n *= 2
    items = [n] * ITEMS
    list(two.map(work, [n, n]))
    seq = par = float("inf")
    for _ in range(ROUNDS):
        seq = min(seq, timed(lambda: list(one.map(work, items))))
        par = min(par, timed(lambda: list(two.map(work, items))))
print(f"w15: n={n} sequential {seq:.3f} s, pool of 2 {par:.3f} s", file=sys.stderr)
print(f"RESULT {seq / par:.2f} speed-up higher")
