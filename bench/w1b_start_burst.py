# W1b: start 200 threads, then join them all (see w1b_start_burst.lua).
import threading
import time

THREADS, ROUNDS = 200, 15


def noop():
    pass


def one_round():
    t0 = time.monotonic()
    threads = []
    for _ in range(THREADS):
        t = threading.Thread(target=noop)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return time.monotonic() - t0


one_round()  # warm up
best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best / THREADS * 1e6:.2f} us/thread lower")
