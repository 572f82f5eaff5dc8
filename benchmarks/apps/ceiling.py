"""The ceiling: a bare asyncio Protocol on uvloop parsing with httptools and answering fixed bytes.

No ASGI, no JSON work: the fastest a Python HTTP/1.1 server can answer here. Usage: python ceiling.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import httptools
import uvloop
from workload import HELLO_RESPONSE, PREDICT_RESPONSE


def _response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


_ANSWERS = {b"/predict": _response(PREDICT_RESPONSE), b"/hello": _response(HELLO_RESPONSE)}
_DEFAULT = _response(b'{"status":"ok"}')


class FixedProtocol(asyncio.Protocol):
    """One connection: parse requests, answer each with prepared bytes (keep-alive, pipelining in order)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer = _DEFAULT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Feed the parser; close on garbage."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        """Pick the answer by path."""
        self.answer = _ANSWERS.get(url, _DEFAULT)

    def on_message_complete(self) -> None:
        """Write the prepared answer."""
        assert self.transport is not None
        self.transport.write(self.answer)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(factory: Callable[[], asyncio.Protocol], port: int) -> None:
    """Serve connections made by ``factory`` on ``port`` until killed."""
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(FixedProtocol, int(sys.argv[1])))
