# W8: resident memory per thread, 200 threads blocked on an Event
# (see w8_thread_memory.lua).
import gc
import re
import sys
import threading
import time

THREADS = 200


def rss_kib():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s*(\d+)", f.read()).group(1))


class Ready:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0

    def add(self):
        with self.lock:
            self.count += 1


def block(ready, gate):
    ready.add()
    gate.wait()


def wait_ready(ready, count):
    while ready.count < count:
        time.sleep(0.005)
    time.sleep(0.1)


# warm up: one thread through the same path
gate = threading.Event()
ready = Ready()
t = threading.Thread(target=block, args=(ready, gate))
t.start()
wait_ready(ready, 1)
gate.set()
t.join()

gate = threading.Event()
ready = Ready()
gc.collect()
before = rss_kib()
threads = [threading.Thread(target=block, args=(ready, gate)) for _ in range(THREADS)]
for t in threads:
    t.start()
wait_ready(ready, THREADS)
gc.collect()
after = rss_kib()
gate.set()
for t in threads:
    t.join()
print(f"w8: blocked on an Event; VmRSS {before} -> {after} KiB", file=sys.stderr)
print(f"RESULT {(after - before) / THREADS:.1f} KiB/thread lower")
