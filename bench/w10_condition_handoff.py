# bench: W10 | Condition handoff between two threads, 2 x 20,000 notify/wake
# Same work as w10_condition_handoff.lua: two threads share a Condition
# (over its default RLock) and a turn flag; each waits under the lock for
# its turn, flips the flag and notifies the other. Best round's time per
# handoff.
import threading
import time

TRIPS, ROUNDS = 20000, 5


def partner(c, turn, trips):
    with c:
        for _ in range(trips):
            while turn[0] != 1:
                c.wait()
            turn[0] = 0
            c.notify()


def one_round():
    c, turn = threading.Condition(), [0]
    t = threading.Thread(target=partner, args=(c, turn, TRIPS))
    t.start()
    t0 = time.monotonic()
    with c:
        for _ in range(TRIPS):
            turn[0] = 1
            c.notify()
            while turn[0] != 0:
                c.wait()
    dt = time.monotonic() - t0
    t.join(60)
    return dt


best = min(one_round() for _ in range(ROUNDS))
print("RESULT %.2f us/handoff lower" % (best / (2 * TRIPS) * 1e6))
