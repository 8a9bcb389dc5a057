# bench: W4t | producer thread puts 200,000 tables {i, "x"}, main gets them
# Same work as w4t_queue_tables.lua: a producer thread puts [i, "x"] for
# i = 1..N into an unbounded queue.Queue; the main thread gets them all.
# Best of a few rounds.
import queue
import threading
import time

N, ROUNDS = 200000, 5


def producer(q, n):
    for i in range(1, n + 1):
        q.put([i, "x"])


def one_round():
    q = queue.Queue()
    t0 = time.monotonic()
    t = threading.Thread(target=producer, args=(q, N))
    t.start()
    total = 0
    for _ in range(N):
        total += q.get()[0]
    dt = time.monotonic() - t0
    t.join(60)
    assert total == N * (N + 1) // 2, "lost or duplicated items"
    return dt


best = min(one_round() for _ in range(ROUNDS))
print("RESULT %.0f msgs/s higher" % (N / best))
