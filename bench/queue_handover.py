"""The Python side of W4, W4t and W11: a producer thread puts N items (the
integers 1..N, or lists [i, "x"]) into a queue and the main thread gets them
all; messages per second, best of a few rounds."""
import threading
import time

N, ROUNDS = 200000, 5


def producer(q, n, tables):
    if tables:
        for i in range(1, n + 1):
            q.put([i, "x"])
    else:
        for i in range(1, n + 1):
            q.put(i)


def run(make_queue, tables):
    def one_round():
        q = make_queue()
        t0 = time.monotonic()
        t = threading.Thread(target=producer, args=(q, N, tables))
        t.start()
        total = 0
        if tables:
            for _ in range(N):
                total += q.get()[0]
        else:
            for _ in range(N):
                total += q.get()
        dt = time.monotonic() - t0
        t.join(60)
        assert total == N * (N + 1) // 2, "lost or duplicated items"
        return dt

    best = min(one_round() for _ in range(ROUNDS))
    print("RESULT %.0f msgs/s higher" % (N / best))
