"""A small asyncio client for streaming apis: tokens per second and time to first token.

Runs as its own process, pinned like wrk: ``python -m benchmarks.stream_client PORT PATH SECONDS STREAMS``
prints one JSON object. Each of STREAMS tasks keeps one keep-alive connection and posts the stream request
over and over for SECONDS; tokens are counted as decoded body bytes divided by the token's length, so the
way a server groups its chunks does not matter.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

import httptools
import uvloop

from .apps.workload import STREAM_BODY, TOKEN, TOKENS


class _Exchange:
    """Parser callbacks for one response."""

    def __init__(self) -> None:
        self.body = 0
        self.first: float | None = None
        self.done = False
        self.status = 0

    def on_body(self, body: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.body += len(body)

    def on_message_complete(self) -> None:
        self.done = True


async def _worker(port: int, path: str, until: float, ttfts: list[float], stats: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(STREAM_BODY)}\r\n\r\n"
    ).encode() + STREAM_BODY
    try:
        while time.perf_counter() < until:
            ex = _Exchange()
            parser = httptools.HttpResponseParser(ex)
            sent = time.perf_counter()
            writer.write(head)
            while not ex.done:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection mid-stream")
                parser.feed_data(data)
            status = parser.get_status_code()
            if status != 200 or ex.body != TOKENS * len(TOKEN):
                stats["errors"] += 1
                continue
            stats["streams"] += 1
            stats["tokens"] += ex.body // len(TOKEN)
            if ex.first is not None:
                ttfts.append(ex.first - sent)
    finally:
        writer.close()


async def measure(port: int, path: str, seconds: float, streams: int) -> dict[str, float]:
    """Run the load; tokens/s, streams, errors and time to first token percentiles (ms)."""
    ttfts: list[float] = []
    stats = {"streams": 0, "tokens": 0, "errors": 0}
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(_worker(port, path, t0 + seconds, ttfts, stats) for _ in range(streams)), return_exceptions=True
    )
    elapsed = time.perf_counter() - t0
    stats["errors"] += sum(isinstance(r, BaseException) for r in results)
    ttfts.sort()
    q = statistics.quantiles(ttfts, n=100) if len(ttfts) >= 2 else [0.0] * 99
    return {
        "tokens_per_s": stats["tokens"] / elapsed,
        "streams": stats["streams"],
        "errors": stats["errors"],
        "ttft_p50_ms": q[49] * 1000,
        "ttft_p99_ms": q[98] * 1000,
    }


if __name__ == "__main__":
    port, path, seconds, streams = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(uvloop.run(measure(port, path, seconds, streams))))
