-- bench: W4 | producer thread puts 200,000 integers, main thread gets them | >= 5x Python
-- A producer thread puts 1..N into an unbounded Queue; the main thread gets
-- them all. The figure is messages per second over the whole hand-over
-- (thread start included), best of a few rounds. Same work as
-- w4_queue_ints.py.
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("queue_handover")("Queue", false)
