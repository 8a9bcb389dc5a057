# bench: W5 | ping-pong through two queues, 20,000 round trips
# Same work as w5_queue_pingpong.lua: the main thread puts a number into one
# queue.Queue, an echo thread gets it and puts it back on a second one.
# Best round's time per round trip.
import queue
import threading
import time

TRIPS, ROUNDS = 20000, 5


def echo(ping, pong):
    while True:
        n = ping.get()
        if n is None:
            return
        pong.put(n)


def one_round():
    ping, pong = queue.Queue(), queue.Queue()
    t = threading.Thread(target=echo, args=(ping, pong))
    t.start()
    t0 = time.monotonic()
    for i in range(1, TRIPS + 1):
        ping.put(i)
        assert pong.get() == i
    dt = time.monotonic() - t0
    ping.put(None)
    t.join(60)
    return dt


best = min(one_round() for _ in range(ROUNDS))
print("RESULT %.2f us/round-trip lower" % (best / TRIPS * 1e6))
