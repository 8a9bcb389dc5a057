-- bench: W4t | producer thread puts 200,000 tables {i, "x"}, main gets them | at least as fast as Python
-- A producer thread puts {i, "x"} for i = 1..N into an unbounded Queue (each
-- table is copied through a transfer buffer); the main thread gets them all.
-- The figure is messages per second, thread start included, best of a few
-- rounds. Same work as w4t_queue_tables.py.
package.path = ((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;") .. package.path
require("queue_handover")("Queue", true)
