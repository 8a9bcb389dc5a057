# W16: reads of a shared number, 1,000,000 pairs (see w16_value_get.lua).
# multiprocessing.Value is Python's shared value; each read of .value takes
# its lock.
import multiprocessing
import time

PAIRS, ROUNDS = 1000000, 7


def one_round():
    v = multiprocessing.Value("q", 42)
    t0 = time.monotonic()
    for _ in range(PAIRS):
        v.value
        v.value
    return time.monotonic() - t0


best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best / PAIRS * 1e9:.2f} ns/pair lower")
