"""One HTTP/1.1 connection, whichever parser reads it: phases, pipelining, deadlines, refusals, keep-alive.

A parser adapter (``httptools_impl``, ``h11_impl``) only turns bytes into four calls: ``on_request`` (a
complete head), ``on_body``, ``on_message_complete`` and ``protocol_error``. Everything else lives here
once: the ASGI scope, the request queue (pipelined requests wait behind the running one and are answered
in order), keep-alive and header deadlines (checked by the server's tick, so no timer per request), the
order of a refusal (after the responses already owed, then close). Running the requests (direct api
calls, ASGI cycles on the runner or their own task) and writing responses is the base class's
(``calls.Calls``).

The connection's reading side is one ``Phase``:

    IDLE --first byte--> HEAD --head done--> BODY --response done, no head begun--> IDLE
    BODY --next request's first byte (pipelined)--> HEAD
    any --Connection: close / HTTP/1.0 / protocol error--> CLOSING (a refusal, if any, goes out last)
    HEAD --websocket handshake--> UPGRADED;  any --peer gone--> CLOSED
"""

from __future__ import annotations

import asyncio
from asyncio import current_task
from collections import deque
from contextvars import copy_context
from typing import cast

from ..types import Headers
from .calls import Calls
from .cycle import RequestCycle
from .exchange import APICall, Exchange
from .flow_control import HIGH_WATER, FlowControl
from .runner import Runner
from .scopes import http_scope
from .state import BODY, CLOSED, CLOSING, HEAD, IDLE, UPGRADED, Phase, ServerState, split_target, target_cache
from .websocket import WebSocketSession, open_session, wants_websocket
from .wire import (
    METHODS,
    ProtocolError,
    error_response,
    request_framing,
)

__all__ = ["DRAIN_GRACE", "HTTPProtocol", "Phase", "ServerState", "split_target"]

DRAIN_GRACE = 0.2  # seconds a connection accepted at the drain, nothing read yet, has to begin its head
# (its request is normally in the socket already, read on the next pass; the tick closes it after)


class HTTPProtocol(Calls):
    """The parser-independent part of a connection; adapters add ``data_received``."""

    def __init__(self, server: ServerState) -> None:
        # With its parser's, a connection has 28 attributes and the access log's adds one. Past 29, CPython
        # 3.11 moves an object's attributes into a dict of its own, and every read of one gets slower
        # (about 2% of a request's instructions): mind the count when adding one.
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.phase: int = IDLE  # a ``Phase`` value
        self.refusal: tuple[int, str] | None = None  # answered once the responses owed are out, then close
        self.current: Exchange | None = None  # the request being answered
        self.parsing: Exchange | None = None  # the request whose body is arriving
        self.pipeline: deque[Exchange] = deque()
        self.deadline = 0.0  # monotonic time after which the tick closes us; 0 for none
        self.began = False  # a request began here (a drain closes an idle connection only then)
        self.since = self.last_read = 0.0  # when a body began (plus body_timeout), when a piece last came
        # Each request runs in a copy of this, never of the request before it (pipelining starts the next
        # one from inside the previous one's task).
        self.context = copy_context()
        self.runner: Runner | None = None  # the task direct api calls run as (``runner.py``)
        self.out: list[bytes] | None = None  # responses held for the end of this loop pass (``emit``)
        self.spare: APICall | None = None  # a finished api call, for the next one
        self.ws: WebSocketSession | None = None  # once the connection is a websocket

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {Phase(self.phase).name} queued={len(self.pipeline)}"
            f" current={type(self.current).__name__ if self.current else None}>"
        )

    # -- transport callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept the connection, or answer 503 and close when over ``max_connections`` or draining."""
        server = self.server
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods.
        transport = self.transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        if len(server.connections) >= server.max_connections or server.draining:
            self.phase = CLOSING
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
        """The peer is gone: every request of this connection sees ``http.disconnect``."""
        self.server.connections.discard(self)
        self.phase = CLOSED
        self.out = None
        if self.ws is not None:
            self.ws.lost()
        if self.current is not None:
            self.current.on_disconnect()
        for c in self.pipeline:
            c.on_disconnect()
        self.pipeline.clear()
        if self.flow is not None:
            self.flow.resume_writing()
        if self.runner is not None:
            self.runner.stop()

    def pause_writing(self) -> None:
        """The transport's buffer is full: ``send`` waits."""
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self.flow.resume_writing()

    def eof_received(self) -> bool | None:
        """The client closed its side: treated as gone (apps watching for ``http.disconnect`` rely on it)."""
        return None

    # -- called by the parser adapters ---------------------------------------------------------------

    def begin_head(self) -> None:
        """The first bytes of a new request arrived: the header deadline starts."""
        self.began = True
        if self.phase < CLOSING:
            self.phase = HEAD
            if self.current is None:
                self.deadline = self.server.now + self.server.header_timeout

    def on_request(self, method: bytes, target: bytes, version: str, headers: Headers) -> int:
        """A complete request head: validate it, start (or queue) its request; return the body framing."""
        server = self.server
        if self.phase == HEAD:
            self.phase = BODY
        self.deadline = 0.0
        name = METHODS.get(method)
        if name is None:
            raise ProtocolError("Unknown or malformed method")
        if len(headers) > server.max_headers:
            raise ProtocolError("Too many header fields", 431)
        length, keep_alive, expect, upgrade, rid = request_framing(method, version, headers, server.max_body)
        path, raw_path, query = target_cache.get(target) or split_target(target)
        if upgrade and name == "GET" and self.current is None and wants_websocket(headers):
            self.open_websocket(version, path, raw_path, query, headers)
            return 0
        handler = server.direct.get(path) if name == "POST" and not expect and server.direct else None
        c: Exchange
        if handler is not None:
            # A direct api call needs no ASGI scope: its headers (and the target, for the access log) will do.
            call = self.spare
            if call is not None:
                self.spare = None
                call.reuse(handler, headers, target, keep_alive, version == "1.0", rid)
            else:
                call = APICall(self, handler, headers, target, keep_alive, version == "1.0", rid)
            c = call
        else:
            scope = http_scope(
                server, name, version, path, raw_path, query, headers, self.sockname, self.client
            )
            c = RequestCycle(self, scope, keep_alive, expect, name == "HEAD", version == "1.0")
        if length == 0:
            c.body_done = True
        else:
            self.deadline = self.since = server.now + server.body_timeout
        self.parsing = c
        if self.current is None:
            self.current = c
            if not c.direct and length:
                # Started now: its app reads the body as it comes. One without a body is started by
                # ``on_message_complete``, which follows at once, as the runner's task (``run_cycle``).
                self.start_cycle(c)  # type: ignore[arg-type]
        else:
            self.pipeline.append(c)
            self.flow.pause_reading()
        return length

    def open_websocket(
        self, version: str, path: str, raw_path: bytes, query: bytes, headers: Headers
    ) -> None:
        """A WebSocket opening handshake: from here on this connection's bytes go to a ``WebSocketSession``
        (or, for a malformed handshake, nowhere: it was refused)."""
        self.phase = UPGRADED  # no more HTTP requests here (reading goes on, for the session)
        self.parsing = None
        self.ws = open_session(self, version, path, raw_path, query, headers)

    def on_body(self, body: bytes) -> None:
        """A piece of the current request's body."""
        c = self.parsing
        assert c is not None
        server = self.server
        size = c.received + len(body)
        c.received = size
        if size > server.max_body:
            raise ProtocolError(f"Request body over the {server.max_body} byte limit", 413)
        self.last_read = server.now  # the body's deadline is worked out from it when it comes (``expire``)
        if c.finished or c.disconnected:
            return
        c.chunks.append(body)
        c.buffered += len(body)
        if c.buffered > HIGH_WATER and not c.direct:  # a direct call wants its body whole
            self.flow.pause_reading()
        if c.waiter is not None:
            c.wake()

    def on_message_complete(self) -> None:
        """The current request's body is complete."""
        c = self.parsing
        if c is None:
            return  # a websocket's handshake (see open_websocket)
        c.body_done = True
        if c.waiter is not None:
            c.wake()
        if not c.keep_alive:
            # Connection: close, HTTP/1.0 or an upgrade: nothing after this request is read.
            self.stop_reading()
        if c is self.current:
            if c.direct:
                self.start_call(c)  # type: ignore[arg-type]
            elif c.task is None:
                self.run_cycle(c)  # type: ignore[arg-type]

    def stop_reading(self) -> None:
        """Parse nothing more on this connection."""
        if self.phase < CLOSING:
            self.phase = CLOSING
        if self.runner is not None:
            self.runner.stopping = True
        self.flow.pause_reading()

    def protocol_error(self, status: int, message: str) -> None:
        """Refuse a request: answer ``status`` in turn (after earlier pipelined responses) and close."""
        self.stop_reading()
        p = self.parsing
        c = self.current
        if p is not None and not p.body_done:
            # The body of ``p`` broke a limit or its framing.
            if p.finished:
                self.close()  # answered already; the rest of its body is not wanted
                return
            if p is not c:
                self.pipeline.remove(p)
            elif p.direct or cast(RequestCycle, p).head is None:
                p.finished = True
                p.on_disconnect()
                self.write(error_response(status, message, self.server.defaults))
                self.close()
                return
            else:
                self.close()
                return
        if c is not None and not c.finished:
            self.refusal = (status, message)
            return
        self.write(error_response(status, message, self.server.defaults))
        self.close()

    # -- called by the requests (``port.Port``) ------------------------------------------------------

    def body_taken(self, exchange: Exchange) -> None:
        """The body ``exchange`` had buffered went to its app: read on, unless others queue behind it."""
        if exchange is self.current and not self.pipeline and self.phase < CLOSING:
            self.flow.resume_reading()

    def response_complete(self, exchange: Exchange, keep_alive: bool) -> None:
        """``exchange`` sent its last byte: close, or move on to the next pipelined request."""
        server = self.server
        if not keep_alive or server.draining:
            self.close()
            return
        self.current = None
        if self.pipeline:
            nxt = self.current = self.pipeline.popleft()
            if not self.pipeline and self.phase < CLOSING:
                self.flow.resume_reading()
            if not nxt.direct:
                if nxt.body_done and current_task(self.loop) is None:
                    self.run_cycle(nxt)  # type: ignore[arg-type]
                else:
                    self.start_cycle(nxt)  # type: ignore[arg-type]
            elif nxt.body_done:
                self.start_call(nxt, current_task(self.loop) is None)  # type: ignore[arg-type]
            return
        if self.refusal is not None:
            status, message = self.refusal
            self.write(error_response(status, message, server.defaults))
            self.close()
            return
        phase = self.phase
        if self.flow.read_paused and phase < CLOSING:
            self.flow.resume_reading()
        if phase == HEAD:
            self.deadline = server.now + server.header_timeout
        else:
            if phase < CLOSING:
                self.phase = IDLE
            self.deadline = server.now + server.keep_alive_timeout

    # -- called by the server ------------------------------------------------------------------------

    def expire(self) -> None:
        """A deadline passed: keep-alive or header (close when idle), or a body's (408; close once answering)."""
        self.deadline, p, server = 0.0, self.parsing, self.server
        if self.phase == BODY and p is not None and not p.body_done:
            idle = max(self.last_read + server.body_timeout, self.since)  # body_timeout between reads
            due = min(idle, self.since + p.received * server.body_per_byte)  # + 1 s per body_min_rate bytes
            if p is not self.current or self.flow.read_paused:  # not read because of us: its clock restarts
                self.deadline = self.since = server.now + server.body_timeout
            elif due > server.now:
                self.deadline = due
            else:  # the app sees http.disconnect
                self.protocol_error(408, "Request body not received in time")
        elif self.current is None:
            self.close()  # a silent or trickling client

    def abort(self) -> None:
        """Cancel the request in flight and close (the graceful timeout passed)."""
        c = self.current
        if c is not None and c.task is not None:
            c.task.cancel()
        self.close()

    def shutdown(self) -> None:
        """The server is draining: close now when idle, else after the current response. A connection
        accepted just before, whose first request may not have been read yet, gets ``DRAIN_GRACE`` for it
        (closed then by the tick) rather than a close that would leave that request unanswered."""
        if self.ws is not None:
            self.ws.going_away()
        elif self.current is None:
            if self.began:
                self.close()
            else:
                self.deadline = self.server.now + DRAIN_GRACE
