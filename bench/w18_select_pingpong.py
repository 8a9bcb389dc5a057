# bench: W18 | ping-pong through threading.select on both sides, 20,000 round trips
# Python cannot wait on several queues at once, so this side is W5's own
# (w5_queue_pingpong.py, run as it is): the main thread puts a number into
# one queue.Queue, an echo thread gets it and puts it back on a second one.
# w18_select_pingpong.lua waits in threading.select on each side.
import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "w5_queue_pingpong.py"),
               run_name="__main__")
