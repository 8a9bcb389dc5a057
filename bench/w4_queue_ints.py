# bench: W4 | producer thread puts 200,000 integers, main thread gets them
# Same work as w4_queue_ints.lua: a producer thread puts 1..N into an
# unbounded queue.Queue; the main thread gets them all. Best of a few rounds.
import queue
import threading
import time

N, ROUNDS = 200000, 5


def producer(q, n):
    for i in range(1, n + 1):
        q.put(i)


def one_round():
    q = queue.Queue()
    t0 = time.monotonic()
    t = threading.Thread(target=producer, args=(q, N))
    t.start()
    total = 0
    for _ in range(N):
        total += q.get()
    dt = time.monotonic() - t0
    t.join(60)
    assert total == N * (N + 1) // 2, "lost or duplicated items"
    return dt


best = min(one_round() for _ in range(ROUNDS))
print("RESULT %.0f msgs/s higher" % (N / best))
