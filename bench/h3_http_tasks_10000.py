"""H3: 10,000 asyncio tasks each GET /delay/1: memory per request in flight (KiB)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_tasks  # noqa: E402

N = 10000
elapsed, threads, kib = http_tasks.run(N, 1)
sys.stderr.write("H3: %.3f s, %d OS threads added\n" % (elapsed, threads))
print("RESULT %.2f KiB/request lower" % (kib / N))
