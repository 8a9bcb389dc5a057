# W6: two threads of pure-Python CPU work vs the same work sequentially
# (see w6_cpu_scaling.lua; the loop length is calibrated the same way).
import sys
import threading
import time

HALF_SECONDS, ROUNDS = 0.6, 5


def work(n):
    s = 0
    for i in range(1, n + 1):
        s = (s + i * i) % 1000003
    return s


def halves(n, count):
    s = 0
    for _ in range(count):
        s += work(n)
    return s


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def run_threads(*arg_lists):
    threads = [threading.Thread(target=halves, args=a) for a in arg_lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def calibrate():
    n = 100000
    while True:
        dt = timed(lambda: run_threads((n, 1)))
        if dt >= 0.1:
            return int(n * HALF_SECONDS / dt)
        n *= 2


n = calibrate()
seq = par = float("inf")
for _ in range(ROUNDS):
    seq = min(seq, timed(lambda: run_threads((n, 2))))
    par = min(par, timed(lambda: run_threads((n, 1), (n, 1))))
print(f"w6: n={n} sequential {seq:.3f} s, parallel {par:.3f} s", file=sys.stderr)
print(f"RESULT {seq / par:.2f} speed-up higher")
