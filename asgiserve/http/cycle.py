"""The request/response cycle shared by the httptools and h11 protocols.

A parser adapter only turns bytes into four calls: ``on_request`` (a complete head), ``on_body``,
``on_message_complete`` and ``protocol_error``. Everything else lives here once: the ASGI scope, ``receive``
and ``send``, pipelining (requests queue behind the running one, answered in order), keep-alive and header
deadlines (checked by the server's tick, so no timer per request), flow control, app misbehaviour.

Hot path rules: one task per request (the app's), the response head is built when the first body message
arrives so that head and body go out in one ``transport.write``; for a response without Content-Length a
``call_soon`` flushes the head alone if the body is not sent in the same loop step (else the head gets an
exact Content-Length instead of chunked framing).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import unquote

from .flow_control import HIGH_WATER, FlowControl
from .wire import (
    CONTINUE,
    LAST_CHUNK,
    METHODS,
    ProtocolError,
    ResponseHead,
    encode_chunk,
    error_response,
    request_framing,
    response_head,
)

__all__ = ["HTTPProtocol", "RequestCycle", "ServerState"]

logger = logging.getLogger("asgiserve")
access_logger = logging.getLogger("asgiserve.access")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_targets: dict[bytes, tuple[str, bytes, bytes]] = {}


class ServerState:
    """What all connections of one server share: the app, limits, the Date clock and live connections."""

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop, **limits: Any) -> None:
        self.app = app
        self.loop = loop
        self.connections: set[HTTPProtocol] = set()
        self.defaults = b""  # server and date headers, refreshed every second by the server's tick
        self.now = loop.time()
        self.state: dict[str, Any] = {}
        self.draining = False
        self.root_path = ""
        self.access_log = False
        self.max_body = 100 * 1024 * 1024
        self.max_header_size = 64 * 1024
        self.max_headers = 100
        self.max_url = 8 * 1024
        self.header_timeout = 10.0
        self.keep_alive_timeout = 5.0
        self.max_connections = 2048
        for key, value in limits.items():
            if not hasattr(self, key):
                raise TypeError(f"unknown server setting {key!r}")
            setattr(self, key, value)


def split_target(target: bytes) -> tuple[str, bytes, bytes]:
    """``(path, raw_path, query_string)`` of a request target (origin, absolute or asterisk form)."""
    hit = _targets.get(target)
    if hit is not None:
        return hit
    if target[:1] == b"/":
        raw, _, query = target.partition(b"?")
    elif target == b"*":
        raw, query = b"*", b""
    else:
        # absolute-form (RFC 9112 3.2.2): keep the path and query, drop scheme and authority.
        _, sep, rest = target.partition(b"://")
        if not sep:
            raise ProtocolError("Invalid request target")
        slash = rest.find(b"/")
        raw, _, query = (rest[slash:] if slash >= 0 else b"/").partition(b"?")
    text = raw.decode("latin-1")
    path = unquote(text) if "%" in text else text
    hit = (path, raw, query)
    if len(_targets) < 4096:
        _targets[target] = hit
    return hit


class HTTPProtocol(asyncio.Protocol):
    """The parser-independent part of a connection; adapters add ``data_received``."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.cycle: RequestCycle | None = None  # the request being answered
        self.parsing: RequestCycle | None = None  # the request whose body is arriving
        self.pipeline: deque[RequestCycle] = deque()
        self.pending_error: tuple[int, str] | None = None
        self.idle = True
        self.in_head = False
        self.stopped = False
        self.deadline = 0.0  # monotonic time after which the tick closes us; 0 for none

    # -- transport callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods.
        transport = self.transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        if len(server.connections) >= server.max_connections or server.draining:
            self.stopped = True
            transport.write(error_response(503, "Too many connections", server.defaults))
            transport.close()
            return
        server.connections.add(self)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.sockname = (sock[0], sock[1]) if isinstance(sock, tuple) else None
        self.deadline = server.now + server.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.stopped = True
        if self.cycle is not None:
            self.cycle.on_disconnect()
        for c in self.pipeline:
            c.on_disconnect()
        self.pipeline.clear()
        if self.flow is not None:
            self.flow.resume_writing()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def eof_received(self) -> bool | None:
        return None

    # -- called by the parser adapters ---------------------------------------------------------------

    def begin_head(self) -> None:
        """The first bytes of a new request arrived: the header deadline starts."""
        self.idle = False
        self.in_head = True
        if self.cycle is None:
            self.deadline = self.server.now + self.server.header_timeout

    def on_request(
        self, method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """A complete request head: validate it, start (or queue) its cycle; return the body framing."""
        server = self.server
        self.in_head = False
        self.deadline = 0.0
        name = METHODS.get(method)
        if name is None:
            raise ProtocolError("Unknown or malformed method")
        if len(headers) > server.max_headers:
            raise ProtocolError("Too many header fields", 431)
        length, keep_alive, expect, _ = request_framing(method, version, headers, server.max_body)
        path, raw_path, query = _targets.get(target) or split_target(target)
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.sockname,
            "client": self.client,
            "scheme": "http",
            "method": name,
            "root_path": server.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "state": server.state.copy(),
        }
        c = RequestCycle(self, scope, keep_alive, expect, name == "HEAD", version == "1.0")
        if length == 0:
            c.body_done = True
        self.parsing = c
        if self.cycle is None:
            self.cycle = c
            c.task = self.loop.create_task(c.run())
        else:
            self.pipeline.append(c)
            self.flow.pause_reading()
        return length

    def on_body(self, body: bytes) -> None:
        """A piece of the current request's body."""
        c = self.parsing
        assert c is not None
        size = c.received + len(body)
        c.received = size
        if size > self.server.max_body:
            raise ProtocolError(f"Request body over the {self.server.max_body} byte limit", 413)
        if c.finished or c.disconnected:
            return
        c.chunks.append(body)
        c.buffered += len(body)
        if c.buffered > HIGH_WATER:
            self.flow.pause_reading()
        if c.waiter is not None:
            c.wake()

    def on_message_complete(self) -> None:
        """The current request's body is complete."""
        c = self.parsing
        assert c is not None
        c.body_done = True
        if c.waiter is not None:
            c.wake()
        if not c.keep_alive:
            # Connection: close, HTTP/1.0 or an upgrade: nothing after this request is read.
            self.stop_reading()

    def stop_reading(self) -> None:
        """Parse nothing more on this connection."""
        self.stopped = True
        self.flow.pause_reading()

    def protocol_error(self, status: int, message: str) -> None:
        """Refuse a request: answer ``status`` in turn (after earlier pipelined responses) and close."""
        self.stop_reading()
        p = self.parsing
        c = self.cycle
        if p is not None and not p.body_done:
            # The body of ``p`` broke a limit or its framing.
            if p.finished:
                self.transport.close()  # answered already; the rest of its body is not wanted
                return
            if p is not c:
                self.pipeline.remove(p)
            elif p.head is None and not p.finished:
                p.finished = True
                p.on_disconnect()
                self.transport.write(error_response(status, message, self.server.defaults))
                self.transport.close()
                return
            else:
                self.transport.close()
                return
        if c is not None and not c.finished:
            self.pending_error = (status, message)
            return
        self.transport.write(error_response(status, message, self.server.defaults))
        self.transport.close()

    # -- called by the cycle -------------------------------------------------------------------------

    def response_complete(self, c: RequestCycle, keep_alive: bool) -> None:
        """``c`` sent its last byte: close, or move on to the next pipelined request."""
        server = self.server
        if server.access_log:
            _log_access(c)
        if not keep_alive or server.draining:
            self.transport.close()
            return
        self.cycle = None
        if self.pipeline:
            nxt = self.cycle = self.pipeline.popleft()
            nxt.task = self.loop.create_task(nxt.run())
            if not self.pipeline and not self.stopped:
                self.flow.resume_reading()
            return
        if self.pending_error is not None:
            status, message = self.pending_error
            self.transport.write(error_response(status, message, server.defaults))
            self.transport.close()
            return
        if not self.stopped:
            self.flow.resume_reading()
        if self.in_head:
            self.deadline = server.now + server.header_timeout
        else:
            self.idle = True
            self.deadline = server.now + server.keep_alive_timeout

    # -- called by the server ------------------------------------------------------------------------

    def expire(self) -> None:
        """The keep-alive or header deadline passed: close (a silent or trickling client)."""
        self.deadline = 0.0
        if self.cycle is None:
            self.transport.close()

    def shutdown(self) -> None:
        """The server is draining: close now when idle, else after the current response."""
        if self.cycle is None:
            self.transport.close()


def _log_access(c: RequestCycle) -> None:
    scope = c.scope
    client = scope["client"]
    who = f"{client[0]}:{client[1]}" if client else "-"
    query = scope["query_string"]
    target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    # repr() escapes control characters, so a hostile path cannot forge log lines.
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d', who, scope["method"], repr(target)[1:-1], scope["http_version"], c.status
    )


class RequestCycle:
    """One request: the ASGI ``receive`` and ``send`` for it, and the state of its response."""

    __slots__ = (
        "body_done",
        "buffered",
        "chunks",
        "continue_sent",
        "disconnected",
        "expect_100",
        "final_sent",
        "finished",
        "head",
        "headers",
        "http10",
        "is_head",
        "keep_alive",
        "proto",
        "received",
        "scope",
        "sent",
        "started",
        "status",
        "task",
        "waiter",
    )

    def __init__(
        self,
        proto: HTTPProtocol,
        scope: dict[str, Any],
        keep_alive: bool,
        expect_100: bool,
        is_head: bool,
        http10: bool,
    ) -> None:
        self.proto = proto
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.is_head = is_head
        self.http10 = http10
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.body_done = False
        self.final_sent = False
        self.disconnected = False
        self.continue_sent = False
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.finished = False
        self.head: ResponseHead | None = None
        self.headers: Any = ()
        self.status = 0
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Wake a ``receive`` waiting for body or disconnect."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_disconnect(self) -> None:
        """The peer is gone: ``receive`` answers ``http.disconnect`` and ``send`` does nothing."""
        self.disconnected = True
        self.wake()

    async def run(self) -> None:
        """Run the app for this request and deal with whatever it left undone."""
        try:
            await self.proto.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._app_failed(exc)
        else:
            if not self.finished and not self.disconnected:
                if not self.started:
                    logger.error("ASGI app returned without starting a response")
                else:
                    logger.error("ASGI app returned without completing the response")
                self._abort()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if not self.finished:
                self.proto.transport.close()
            return
        logger.error("Exception in ASGI application", exc_info=exc)
        if not self.finished and not self.disconnected:
            self._abort()

    def _abort(self) -> None:
        """Answer 500 when nothing was written yet, else cut the connection (no final chunk)."""
        self.finished = True
        transport = self.proto.transport
        if self.head is None:
            self.status = 500
            transport.write(error_response(500, "Internal Server Error", self.proto.server.defaults))
        transport.close()

    async def receive(self) -> dict[str, Any]:
        """ASGI receive: body pieces, then ``http.disconnect`` once the peer leaves or the response is done."""
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}
            chunks = self.chunks
            if chunks or (self.body_done and not self.final_sent):
                if len(chunks) == 1:
                    body = chunks[0]
                    chunks.clear()
                elif chunks:
                    body = b"".join(chunks)
                    chunks.clear()
                else:
                    body = b""
                more = not self.body_done
                if not more:
                    self.final_sent = True
                if self.buffered > HIGH_WATER:
                    proto = self.proto
                    if proto.cycle is self and not proto.pipeline and not proto.stopped:
                        proto.flow.resume_reading()
                self.buffered = 0
                return {"type": "http.request", "body": body, "more_body": more}
            if self.final_sent and self.finished:
                return {"type": "http.disconnect"}
            if self.expect_100 and not self.continue_sent and self.head is None and not self.body_done:
                # RFC 9110 10.1.1: the client waits for this before sending the body.
                self.continue_sent = True
                self.proto.transport.write(CONTINUE)
            waiter = self.waiter = self.proto.loop.create_future()
            await waiter

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send: the head is held until the first body message so both leave in one write."""
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.status = message["status"]
            headers = self.headers = message.get("headers") or ()
            # A response with a Content-Length is about to send its body: hold the head for it. Any other
            # (a stream, perhaps slow to start) gets its head flushed at the end of this loop step.
            for name, _ in headers:
                if name == b"content-length":
                    return
            self.proto.loop.call_soon(self._flush_head)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} during an HTTP response")
        if self.finished:
            raise RuntimeError("response already completed")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        proto = self.proto
        head = self.head
        if head is None:
            head = self.head = self._build_head(-1 if more else len(body))
            if not more and not head.chunked and (head.length == len(body) or head.no_body):
                # The common case: a whole response in one message, one write.
                data = head.data if head.no_body else head.data + body
                proto.transport.write(data)
                self.finished = True
                self.sent = len(body)
                if self.waiter is not None:
                    self.wake()
                proto.response_complete(self, head.keep_alive)
                return
            prefix = head.data
        else:
            prefix = None
        if head.no_body:
            data = b""
        elif head.chunked:
            data = encode_chunk(body) if body else b""
            if not more:
                data += LAST_CHUNK
        else:
            data = body
            self.sent += len(body)
            if head.length >= 0 and self.sent > head.length:
                logger.error("ASGI app sent more than its Content-Length of %d bytes", head.length)
                self.finished = True
                if prefix is not None:
                    proto.transport.write(prefix)
                proto.transport.close()
                return
        transport = proto.transport
        if prefix is not None:
            if len(data) < 65536:
                transport.write(prefix + data if data else prefix)
            else:
                transport.writelines((prefix, data))
        elif data:
            transport.write(data)
        if not more:
            self.finished = True
            if self.waiter is not None:
                self.wake()
            if head.length >= 0 and not head.no_body and self.sent != head.length:
                logger.error("ASGI app sent %d bytes for a Content-Length of %d", self.sent, head.length)
                transport.close()
                return
            proto.response_complete(self, head.keep_alive)
        elif proto.flow.write_paused:
            await proto.flow.drain()

    def _build_head(self, body_len: int) -> ResponseHead:
        proto = self.proto
        keep_alive = self.keep_alive and not proto.server.draining
        if self.expect_100 and not self.continue_sent and not self.body_done:
            keep_alive = False  # the client may never send the body it announced
        return response_head(
            self.status, self.headers, proto.server.defaults, keep_alive, self.http10, self.is_head, body_len
        )

    def _flush_head(self) -> None:
        if self.head is not None or self.finished or self.disconnected:
            return
        try:
            self.head = self._build_head(-1)
        except ValueError as exc:
            logger.error("Invalid response from ASGI app: %s", exc)
            self._abort()
            return
        self.proto.transport.write(self.head.data)
