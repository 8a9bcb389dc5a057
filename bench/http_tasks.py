"""The Python side of H1 and H3: n asyncio tasks each GET /delay/<delay>
from the local test server, all at once, with a raw HTTP/1.1 request on
asyncio.open_connection (the standard library has no asynchronous HTTP
client). Returns the wall time, the OS threads added and the growth of
resident memory in KiB, as bench/http_tasks.lua does."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_fanout  # noqa: E402


def status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


async def fetch(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                  % (path, host, port)).encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return status


async def main(n, host, port, path, delay, peak):
    tasks = [asyncio.create_task(fetch(host, port, path)) for _ in range(n)]
    await asyncio.sleep(delay / 2)
    peak.append(status_field("Threads"))
    statuses = await asyncio.gather(*tasks)
    if statuses != [200] * n:
        sys.exit("some requests failed")


def run(n, delay):
    proc, base = http_fanout.start_server()
    try:
        host, port = base[len("http://"):].split(":")
        threads0, rss0 = status_field("Threads"), status_field("VmRSS")
        peak = []
        t0 = time.monotonic()
        asyncio.run(main(n, host, int(port), "/delay/%g" % delay, delay, peak))
        elapsed = time.monotonic() - t0
        grown = status_field("VmHWM") - rss0
    finally:
        http_fanout.stop_server(proc)
    return elapsed, peak[0] - threads0, grown
