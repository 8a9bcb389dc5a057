-- bench: W11 | SimpleQueue: producer puts 200,000 integers, main gets them | at least as fast as Python
-- W4 through a SimpleQueue: a producer thread puts 1..N, the main thread gets
-- them all. The figure is messages per second over the whole hand-over
-- (thread start included), best of a few rounds. Same work as
-- w11_simplequeue.py, which uses queue.SimpleQueue (implemented in C).
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("queue_handover")("SimpleQueue", false)
