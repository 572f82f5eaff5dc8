"""The client's sans-IO HTTP/1.1 core: request heads out, responses parsed incrementally in, no I/O here.

Both pools (``pool.py`` on blocking sockets, ``aiopool.py`` on asyncio) feed received bytes to a
``Response`` and read its state; the rules about what may be reused live here so they cannot drift:
- framing is llhttp's (httptools), which is strict about chunk sizes, conflicting Content-Length and
  Transfer-Encoding (RFC 9112 6.1, 6.3); a body delimited by the connection's end (no length, not
  chunked, RFC 9112 6.3 item 8) completes on EOF and is never followed by reuse;
- 1xx interim responses are skipped (RFC 9110 15.2), 204 and 304 carry no body, nor does a HEAD answer;
- a connection is reusable only when the response ended cleanly, both sides allow keep-alive
  (RFC 9112 9.3) and no byte arrived beyond the response (anything else would be ambiguous).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import httptools

# The errors live in ``asgiserve.errors`` (one hierarchy with ``HTTPError``); importable from here as before.
from ..errors import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnected,
    TLSError,
    TransportError,
)

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "Headers",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
    "ServerDisconnected",
    "TLSError",
    "TransportError",
    "encode_head",
    "header_list",
]


class _Items(Protocol):
    def items(self) -> Iterable[tuple[object, object]]: ...


Headers = _Items | Iterable[tuple[object, object]]
"""Extra request headers: a mapping (anything with ``items()``) or ``(name, value)`` pairs."""


def encode_head(method: str, target: str, host: str, headers: list[tuple[str, str]]) -> bytes:
    """A request head without the final blank line, so that callers can append framing headers."""
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError(f"invalid header {name!r}")
    if any(c in target for c in " \r\n"):
        raise ValueError(f"invalid request target {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class _HeadDone(Exception):
    """Raised from the parser callback to stop after a HEAD response's headers."""


class Response:
    """One response being parsed: status, headers (names lower-cased), body chunks (``buffered`` bytes), completion."""

    __slots__ = (
        "_eof_framed",
        "_head",
        "_interim",
        "_parser",
        "buffered",
        "chunks",
        "complete",
        "extra",
        "headers",
        "headers_done",
        "keep_alive",
        "received",
        "status",
    )

    def __init__(self, head: bool = False) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head = head
        self._interim = False
        self._eof_framed = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.extra = False
        self.received = 0

    def __repr__(self) -> str:
        state = "complete" if self.complete else ("body" if self.headers_done else "head")
        return f"<Response {self.status} {state}, {self.received} bytes in>"

    # -- feeding ---------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse received bytes; raise ``RemoteProtocolError`` on broken framing."""
        self.received += len(data)
        if self.complete and data:
            self.extra = True
            self.keep_alive = False
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadDone):
                raise
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a finished response: only reuse is lost
                self.keep_alive = False
                self.extra = True
                return
            raise RemoteProtocolError(f"invalid HTTP response: {exc}") from None

    def feed_eof(self) -> None:
        """The peer closed: completes an EOF-delimited body, else the response was cut short."""
        if self.complete:
            return
        if self.headers_done and self._eof_framed:
            self.complete = True
            self.keep_alive = False
            return
        raise ServerDisconnected(
            "server closed the connection before the response was complete"
            if self.received
            else "server closed the connection without sending a response"
        )

    @property
    def reusable(self) -> bool:
        """True when the connection may carry another request: complete, keep-alive, nothing beyond."""
        return self.complete and self.keep_alive and not self.extra

    def take_body(self) -> bytes:
        """The body received so far, emptied from the buffer."""
        chunks = self.chunks
        if not chunks:
            return b""
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        return body

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True
            self.headers = {}
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._head:
            # llhttp cannot be told the request was HEAD, so stop it here; the connection is not reused
            # because the parser's position after the head is unknown.
            self.complete = True
            self.keep_alive = False
            raise _HeadDone
        h = self.headers
        if (
            status not in (204, 304)
            and "content-length" not in h
            and "chunked" not in h.get("transfer-encoding", "")
        ):
            self._eof_framed = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.complete:
            return
        self.complete = True


def header_list(headers: Headers | None) -> list[tuple[str, str]]:
    """Normalise a mapping or a list of pairs into a list of ``(name, value)`` strings."""
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(str(k), str(v)) for k, v in items]
