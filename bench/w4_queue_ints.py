# bench: W4 | producer thread puts 200,000 integers, main thread gets them
# Same work as w4_queue_ints.lua: a producer thread puts 1..N into an
# unbounded queue.Queue; the main thread gets them all. Best of a few rounds.
import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queue_handover  # noqa: E402

queue_handover.run(queue.Queue, False)
