# bench: W9 | Event ping-pong between two threads, 20,000 round trips
# Same work as w9_event_pingpong.lua: the main thread sets one Event and
# waits for a second; an echo thread waits for the first, clears it and sets
# the second. Best round's time per round trip.
import threading
import time

TRIPS, ROUNDS = 20000, 5


def echo(ping, pong, trips):
    for _ in range(trips):
        ping.wait()
        ping.clear()
        pong.set()


def one_round():
    ping, pong = threading.Event(), threading.Event()
    t = threading.Thread(target=echo, args=(ping, pong, TRIPS))
    t.start()
    t0 = time.monotonic()
    for _ in range(TRIPS):
        ping.set()
        pong.wait()
        pong.clear()
    dt = time.monotonic() - t0
    t.join(60)
    return dt


best = min(one_round() for _ in range(ROUNDS))
print("RESULT %.2f us/round-trip lower" % (best / TRIPS * 1e6))
