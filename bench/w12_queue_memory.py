# bench: W12 | memory per item of a Queue holding 1,000,000 integers
# Same work as w12_queue_memory.lua: resident memory growth per item while
# 1,000,000 distinct integers sit in a queue.Queue (/proc/self/statm, Linux).
import gc
import queue

N = 1000000


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


gc.collect()
q = queue.Queue()
before = resident_bytes()
for i in range(1, N + 1):
    q.put(1000000 + i)
after = resident_bytes()
assert q.qsize() == N
print("RESULT %.1f bytes/item lower" % ((after - before) / N))
