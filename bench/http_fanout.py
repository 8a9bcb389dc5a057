"""The Python side of W7a-W7c: n threads each GET /delay/<delay> from the
local test server with urllib.request; prints the wall time from the first
start to the last join."""
import os
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.environ.get("THREADING_HTTP_SERVER",
                        os.path.join(HERE, "..", "build", "tools", "http_server"))


def start_server():
    """Start the local test server; returns (process, base URL)."""
    proc = subprocess.Popen([SERVER], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, "http://127.0.0.1:%d" % port


def stop_server(proc):
    proc.terminate()
    proc.wait()


def fetch(url, statuses, i):
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        statuses[i] = r.status


def run(n, delay):
    proc, base = start_server()
    try:
        url = base + "/delay/" + delay
        statuses = [None] * n
        t0 = time.monotonic()
        threads = [threading.Thread(target=fetch, args=(url, statuses, i)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    finally:
        stop_server(proc)
    if statuses != [200] * n:
        sys.exit("some requests failed: %r" % statuses)
    print("RESULT %.3f s lower" % elapsed)
