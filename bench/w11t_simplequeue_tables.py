# bench: W11t | SimpleQueue: producer puts 200,000 tables {i, "x"}, main gets them
# Same work as w11t_simplequeue_tables.lua: a producer thread puts [i, "x"]
# for i = 1..N into a queue.SimpleQueue; the main thread gets them all. Best
# of a few rounds.
import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queue_handover  # noqa: E402

queue_handover.run(queue.SimpleQueue, True)
