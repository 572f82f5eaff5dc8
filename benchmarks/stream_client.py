"""A small asyncio client for streaming apis: tokens per second and time to first token.

Runs as its own process, pinned like wrk: ``python -m benchmarks.stream_client PORT PATH SECONDS STREAMS``
prints one JSON object. Each of STREAMS connections (keep-alive, an asyncio protocol parsing with
httptools as bytes arrive) posts the stream request over and over for SECONDS; tokens are counted as
decoded body bytes divided by the token's length, so the way a server groups its chunks does not matter.
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


class _Stream(asyncio.Protocol):
    """One keep-alive connection posting the stream request over and over, parsed as bytes arrive.

    A protocol rather than asyncio's streams: a reader task woken per chunk costs the client about as much
    as the server spends writing it, and the load generator must not be what limits the figure.
    """

    def __init__(self, request: bytes, until: float, ttfts: list[float], stats: dict[str, int]) -> None:
        self.request = request
        self.until = until
        self.ttfts = ttfts
        self.stats = stats
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent = 0.0
        self.first: float | None = None
        self.body = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.first = None
        self.body = 0
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(exc)

    def on_body(self, body: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.body += len(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200 or self.body != TOKENS * len(TOKEN):
            self.stats["errors"] += 1
        else:
            self.stats["streams"] += 1
            self.stats["tokens"] += self.body // len(TOKEN)
            if self.first is not None:
                self.ttfts.append(self.first - self.sent)
        if time.perf_counter() < self.until:
            self.parser = httptools.HttpResponseParser(self)
            asyncio.get_running_loop().call_soon(self._send)  # after the parser has returned
        else:
            self._end(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or ConnectionError("server closed the connection mid-stream"))

    def _end(self, exc: BaseException | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


async def _worker(port: int, path: str, until: float, ttfts: list[float], stats: dict[str, int]) -> None:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(STREAM_BODY)}\r\n\r\n"
    ).encode() + STREAM_BODY
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: _Stream(request, until, ttfts, stats), "127.0.0.1", port)
    await proto.done


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
