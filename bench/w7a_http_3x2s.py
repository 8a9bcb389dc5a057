"""W7a: 3 threads each GET /delay/2 (total s): the Python side, threading with urllib.request."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_fanout  # noqa: E402

http_fanout.run(3, "2")
