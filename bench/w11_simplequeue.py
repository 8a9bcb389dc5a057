# bench: W11 | SimpleQueue: producer puts 200,000 integers, main gets them
# Same work as w11_simplequeue.lua: a producer thread puts 1..N into a
# queue.SimpleQueue; the main thread gets them all. Best of a few rounds.
import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queue_handover  # noqa: E402

queue_handover.run(queue.SimpleQueue, False)
