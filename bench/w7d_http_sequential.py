"""W7d: 10,000 sequential GET /get over one kept-alive connection, Python side."""
import http.client
import os
import subprocess
import sys
import time

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


N = 10000


def main():
    proc, base = start_server()
    try:
        port = int(base.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/get")          # connect before the clock starts
        conn.getresponse().read()
        t0 = time.monotonic()
        for _ in range(N):
            conn.request("GET", "/get")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                sys.exit("status %d" % r.status)
        elapsed = time.monotonic() - t0
        conn.close()
    finally:
        stop_server(proc)
    print("RESULT %.0f req/s higher" % (N / elapsed))


main()
