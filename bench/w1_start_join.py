# W1: start+join 1000 threads, one after another (see w1_start_join.lua).
import threading
import time

THREADS, ROUNDS = 1000, 7


def noop():
    pass


def one_round():
    t0 = time.monotonic()
    for _ in range(THREADS):
        t = threading.Thread(target=noop)
        t.start()
        t.join()
    return time.monotonic() - t0


one_round()  # warm up
best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best / THREADS * 1e6:.2f} us/thread lower")
