# W17: as_completed over 4,000 futures, ended one at a time from a thread
# that waits for each acknowledgement (see w17_as_completed.lua). W17_N sets
# the number of futures.
import concurrent.futures as cf
import os
import queue
import threading
import time

N = int(os.environ.get("W17_N", "4000"))
ROUNDS = 3


def one_round():
    futures = [cf.Future() for _ in range(N)]
    number = {f: i for i, f in enumerate(futures)}
    ack = queue.Queue()
    result = []

    def setter():
        t0 = time.monotonic()
        for i in range(N):
            futures[i].set_result(i)
            assert ack.get() == i
        result.append(time.monotonic() - t0)

    t = threading.Thread(target=setter)
    t.start()
    seen = 0
    for f in cf.as_completed(futures):
        seen += 1
        ack.put(number[f])
    assert seen == N
    t.join()
    return result[0]


best = min(one_round() for _ in range(ROUNDS))
print(f"RESULT {best / N * 1e6:.2f} us/future lower")
