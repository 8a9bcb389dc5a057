# W3: uncontended Lock acquire+release, 1,000,000 pairs (see w3_lock.lua).
import threading
import time

PAIRS, ROUNDS = 1000000, 7


def one_round():
    lock = threading.Lock()
    t0 = time.monotonic()
    for _ in range(PAIRS):
        lock.acquire()
        lock.release()
    return time.monotonic() - t0


best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best / PAIRS * 1e9:.2f} ns/pair lower")
