# W2: the tutorial's demo-2 counter (see w2_counter.lua).
import threading
import time

INCREMENTS, ROUNDS = 100000, 5
counter = 0


def increment(lock):
    global counter
    for _ in range(INCREMENTS):
        with lock:
            counter += 1


def one_round():
    global counter
    counter = 0
    lock = threading.Lock()
    t0 = time.monotonic()
    t1 = threading.Thread(target=increment, args=(lock,))
    t2 = threading.Thread(target=increment, args=(lock,))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    elapsed = time.monotonic() - t0
    assert counter == 2 * INCREMENTS, "lost updates under the lock"
    return elapsed


best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best * 1e3:.2f} ms lower")
