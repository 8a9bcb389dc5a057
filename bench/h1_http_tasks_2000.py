"""H1: 2,000 asyncio tasks each GET /delay/1 (total s), raw HTTP/1.1 on asyncio streams."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_tasks  # noqa: E402

elapsed, threads, kib = http_tasks.run(2000, 1)
sys.stderr.write("H1: %d OS threads added, resident memory grew %d KiB (%.1f KiB per request)\n"
                 % (threads, kib, kib / 2000))
print("RESULT %.3f s lower" % elapsed)
