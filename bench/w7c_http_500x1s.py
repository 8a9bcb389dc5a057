"""W7c: 500 threads each GET /delay/1 (total s; goal < 1.5 s): the Python side, threading with urllib.request."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_fanout  # noqa: E402

http_fanout.run(500, "1")
