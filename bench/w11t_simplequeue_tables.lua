-- bench: W11t | SimpleQueue: producer puts 200,000 tables {i, "x"}, main gets them | no slower than Python
-- W4t through a SimpleQueue: a producer thread puts {i, "x"} for i = 1..N,
-- the main thread gets them all (each table travels inline in the queue's
-- segment and is rebuilt by the getter). The figure is messages per second
-- over the whole hand-over (thread start included), best of a few rounds.
-- Same work as w11t_simplequeue_tables.py, which puts lists [i, "x"] into a
-- queue.SimpleQueue (implemented in C): the figure W4t's target names.
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("queue_handover")("SimpleQueue", true)
