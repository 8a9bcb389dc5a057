"""H2: 10,000 sequential GET /get from one asyncio task on one kept-alive
stream (req/s): raw HTTP/1.1 on asyncio.open_connection."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_fanout  # noqa: E402

N = 10000


async def get(reader, writer, request):
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def main(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    request = ("GET /get HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode()
    await get(reader, writer, request)
    t0 = time.monotonic()
    for _ in range(N):
        if await get(reader, writer, request) != 200:
            sys.exit("a request failed")
    elapsed = time.monotonic() - t0
    writer.close()
    return N / elapsed


proc, base = http_fanout.start_server()
try:
    host, port = base[len("http://"):].split(":")
    rate = asyncio.run(main(host, int(port)))
finally:
    http_fanout.stop_server(proc)
print("RESULT %.0f req/s higher" % rate)
