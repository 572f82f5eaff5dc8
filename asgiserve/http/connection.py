"""One HTTP/1.1 connection, whichever parser reads it: pipelining, deadlines, refusals, keep-alive.

A parser adapter (``httptools_impl``, ``h11_impl``) only turns bytes into four calls: ``on_request`` (a
complete head), ``on_body``, ``on_message_complete`` and ``protocol_error``. Everything else lives here
once: the ASGI scope, the request queue (pipelined requests wait behind the running one and are answered
in order), keep-alive and header deadlines (checked by the server's tick, so no timer per request), the
order of a refusal (after the responses already owed, then close), and api calls answered without ASGI
(``start_fast``: no scope, no task per call, one write).

Whole responses (api calls, and ASGI responses sent in one message) are coalesced per loop pass
(``HTTPProtocol.emit``): the first one of a pass is written at once, the others made ready in the same
pass are written together when it ends, so that the kernel's send path runs back to back instead of
between requests' Python work (measured: about 1 µs less system time per request at 64 connections, and
no added wait for a lone client).
"""

from __future__ import annotations

import asyncio
import logging
import types
from asyncio import CancelledError, current_task
from asyncio.tasks import _enter_task, _leave_task
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import Context, copy_context
from time import monotonic
from typing import Any, cast
from urllib.parse import unquote

from .cycle import RequestCycle
from .flow_control import HIGH_WATER, FlowControl
from .websocket import WebSocketSession, handshake_error, wants_websocket
from .wire import LENGTHS, METHODS, OK_PREFIX, ProtocolError, api_head, error_response, request_framing

__all__ = ["HTTPProtocol", "ServerState", "split_target"]

logger = logging.getLogger("asgiserve")
access_logger = logging.getLogger("asgiserve.access")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_targets: dict[bytes, tuple[str, bytes, bytes]] = {}
_UNSTARTED = object()  # a queued api call whose coroutine has not run yet


class ServerState:
    """What all connections of one server share: the app, limits, the Date clock and live connections."""

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop, **limits: Any) -> None:
        self.app = app
        self.loop = loop
        self.connections: set[HTTPProtocol] = set()
        self.defaults = b""  # server and date headers, refreshed every second by the server's tick
        self.head_end = b"\r\n"  # the same, then the blank line that ends a head
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
        # POST paths answered through the app's ``fast_start`` and ``fast_finish`` (an asgiserve service's
        # apis), without ASGI messages; the behaviour is the same as through ``app(scope, receive, send)``.
        self.fast: dict[str, Any] = {}
        self.fast_app: Any = app
        # Connections holding responses for the end of this loop pass (see ``HTTPProtocol.emit``).
        self.held: list[HTTPProtocol] = []
        self.pass_open = False
        fast_handler = getattr(app, "fast_handler", None)
        if callable(fast_handler) and not self.root_path:
            for path in getattr(app, "routes", {}):
                handler = fast_handler(path)
                if handler is not None:
                    self.fast[path] = handler

    def flush(self) -> None:
        """The loop pass is over: write the responses held back during it."""
        self.pass_open = False
        held = self.held
        if held:
            self.held = []
            for conn in held:
                try:
                    conn.flush()
                except RuntimeError:  # its transport was torn down under it: the others still go out
                    logger.debug("held response dropped for a closed connection", exc_info=True)


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
        # Each request runs in a copy of this, never of the request before it (pipelining starts the next
        # one from inside the previous one's task).
        self.context = copy_context()
        # The task api calls of this connection run as (see ``start_fast``), its wake-up and its next call.
        self.runner: asyncio.Task[None] | None = None
        self.runner_wakeup: asyncio.Future[None] | None = None
        self.job: tuple[RequestCycle, Coroutine[Any, Any, Any], Context, Any] | None = None
        self.out: list[bytes] | None = None  # responses held for the end of this loop pass (``emit``)
        self.spare: RequestCycle | None = None  # a finished api call's cycle, for the next one
        self.ws: WebSocketSession | None = None  # once the connection is a websocket

    # -- transport callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept the connection, or answer 503 and close when over ``max_connections`` or draining."""
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
        """The peer is gone: every request of this connection sees ``http.disconnect``."""
        self.server.connections.discard(self)
        self.stopped = True
        self.out = None
        if self.ws is not None:
            self.ws.lost()
        if self.cycle is not None:
            self.cycle.on_disconnect()
        for c in self.pipeline:
            c.on_disconnect()
        self.pipeline.clear()
        if self.flow is not None:
            self.flow.resume_writing()
        wakeup = self.runner_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.cancel()  # the runner is idle: it ends

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
        length, keep_alive, expect, upgrade = request_framing(method, version, headers, server.max_body)
        path, raw_path, query = _targets.get(target) or split_target(target)
        if upgrade and name == "GET" and self.cycle is None and wants_websocket(headers):
            self.open_websocket(version, path, raw_path, query, headers)
            return 0
        fast = server.fast.get(path) if name == "POST" and not expect and server.fast else None
        if fast is not None:
            # An api call needs no ASGI scope: its headers (and the target, for the access log) will do.
            c = self.spare
            if c is not None:
                self.spare = None
                c.reuse(keep_alive, version == "1.0")
            else:
                c = RequestCycle(self, None, keep_alive, False, False, version == "1.0")
            c.fast = fast
            c.headers = headers
            c.target = target
        else:
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
            if c.fast is None:
                c.task = self.context.run(self.loop.create_task, c.run())
        else:
            self.pipeline.append(c)
            self.flow.pause_reading()
        return length

    def open_websocket(
        self, version: str, path: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """A WebSocket opening handshake: from here on this connection's bytes go to a ``WebSocketSession``.

        A malformed handshake is answered 400 (426 for another protocol version) and closed; a valid one
        runs the app with a ``websocket`` scope, which accepts or refuses it.
        """
        server = self.server
        self.stopped = True  # no more HTTP requests here (reading goes on, for the session)
        self.parsing = None
        fields = dict(headers)
        problem = handshake_error(fields) if version == "1.1" else (400, "WebSocket needs HTTP/1.1")
        if problem is not None:
            status, message = problem
            extra = b"sec-websocket-version: 13\r\n" if status == 426 else b""
            self.write(error_response(status, message, server.defaults + extra))
            self.close()
            return
        offered = fields.get(b"sec-websocket-protocol", b"").decode("latin-1")
        scope = {
            "type": "websocket",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.sockname,
            "client": self.client,
            "scheme": "ws",
            "root_path": server.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": [p.strip() for p in offered.split(",") if p.strip()],
            "state": server.state.copy(),
        }
        self.ws = WebSocketSession(self, scope, fields[b"sec-websocket-key"].strip())
        self.ws.start()

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
        if c.buffered > HIGH_WATER and c.fast is None:  # an api call wants its body whole
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
        if c.fast is not None and c is self.cycle:
            self.start_fast(c)

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
                self.close()  # answered already; the rest of its body is not wanted
                return
            if p is not c:
                self.pipeline.remove(p)
            elif p.head is None and not p.finished:
                p.finished = True
                p.on_disconnect()
                self.write(error_response(status, message, self.server.defaults))
                self.close()
                return
            else:
                self.close()
                return
        if c is not None and not c.finished:
            self.pending_error = (status, message)
            return
        self.write(error_response(status, message, self.server.defaults))
        self.close()

    # -- called by the cycle -------------------------------------------------------------------------

    def response_complete(self, c: RequestCycle, keep_alive: bool) -> None:
        """``c`` sent its last byte: close, or move on to the next pipelined request."""
        server = self.server
        if server.access_log:
            _log_access(c)
        if not keep_alive or server.draining:
            self.close()
            return
        self.cycle = None
        if self.pipeline:
            nxt = self.cycle = self.pipeline.popleft()
            if not self.pipeline and not self.stopped:
                self.flow.resume_reading()
            if nxt.fast is None:
                nxt.task = self.context.run(self.loop.create_task, nxt.run())
            elif nxt.body_done:
                self.start_fast(nxt, current_task(self.loop) is None)
            return
        if self.pending_error is not None:
            status, message = self.pending_error
            self.write(error_response(status, message, server.defaults))
            self.close()
            return
        if self.flow.read_paused and not self.stopped:
            self.flow.resume_reading()
        if self.in_head:
            self.deadline = server.now + server.header_timeout
        else:
            self.idle = True
            self.deadline = server.now + server.keep_alive_timeout

    # -- api calls without ASGI (see ServerState.fast) -----------------------------------------------

    def start_fast(self, c: RequestCycle, eager: bool = True) -> None:
        """Answer ``c`` (current, body complete) through the app's ``fast_start`` and ``fast_finish``.

        An async api's own coroutine takes its first step right here, as the connection's runner task (a
        task per request costs more than the rest of a small call): most such calls finish in that step
        and are answered at once. A call that suspends is carried on by the runner, and other calls start
        there. Each call still gets a fresh copy of the connection's context, and ``current_task()`` is
        the runner throughout, which is what the deadline sweep cancels.
        """
        chunks = c.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        loop = self.loop
        runner = self.runner
        if runner is None or runner.done():
            runner = self.runner = loop.create_task(self._run_calls())
        c.t0 = t0 = monotonic()
        started = self.server.fast_app.fast_start(c.fast, c.headers, body, runner, t0)
        if started[0] is not None:
            self.send_fast(c, started)
            return
        _, coro, c.direct = started
        c.task = runner
        ctx = self.context.copy()
        if not (c.direct and eager):
            # Not the api's own coroutine (a sync api's thread, a batch, a form), which would suspend at
            # once anyway: started here, it wakes a thread that then waits for the GIL while the loop
            # parses (measured: 25 times the context switches). Or we are inside a task already (the
            # runner's previous call, or an ASGI request before this pipelined one: ``eager`` is false).
            self.job = (c, coro, ctx, _UNSTARTED)
            self._wake_runner()
            return
        _enter_task(loop, runner)
        try:
            waiting = ctx.run(coro.send, None)
        except StopIteration as stop:
            result, error = stop.value, None
        except (Exception, CancelledError) as exc:
            result, error = None, exc
        else:
            self.job = (c, coro, ctx, waiting)
            self._wake_runner()
            return
        finally:
            _leave_task(loop, runner)
        self.send_fast(c, self.server.fast_app.fast_finish(c.fast, runner, t0, True, result, error))

    def _wake_runner(self) -> None:
        wakeup = self.runner_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run_calls(self) -> None:
        """The runner: carries on api calls that suspended in ``start_fast``, one at a time."""
        loop = self.loop
        while True:
            cancelled = False
            if self.job is None:
                if self.stopped:
                    return  # no more calls will come (``start_fast`` starts a new runner if one does)
                wakeup = self.runner_wakeup = loop.create_future()
                try:
                    await wakeup
                except CancelledError:
                    # A cancel aimed at the call just handed over (its deadline), or the end of the
                    # connection or of the loop when there is none.
                    if self.job is None:
                        return
                    cancelled = True
                finally:
                    self.runner_wakeup = None
                if self.job is None:
                    if self.stopped:
                        return
                    continue
            c, coro, ctx, waiting = self.job
            self.job = None
            try:
                result = await _carry(ctx, coro, waiting, cancelled)
            except (Exception, CancelledError) as exc:
                self.finish_fast(c, None, exc)
            else:
                self.finish_fast(c, result, None)
            if self.job is None and self.stopped:
                return

    def finish_fast(self, c: RequestCycle, result: Any, error: BaseException | None) -> None:
        """The call for ``c`` ended with ``result`` or ``error``: answer it."""
        self.send_fast(
            c, self.server.fast_app.fast_finish(c.fast, self.runner, c.t0, c.direct, result, error)
        )

    def send_fast(self, c: RequestCycle, response: Any) -> None:
        """Write a whole api response, head and body in one write; None cuts the connection (cancelled)."""
        if response is None:
            c.finished = True
            self.close()
            return
        if c.disconnected:
            return
        status, ctype, out, extra = response
        server = self.server
        keep_alive = c.keep_alive and not server.draining
        c.status = status
        c.started = c.finished = True
        c.sent = size = len(out)
        prefix = (
            OK_PREFIX.get(ctype) if status == 200 and extra is None and keep_alive and not c.http10 else None
        )
        if prefix is not None:
            length = LENGTHS[size] if size < 2048 else b"%d\r\n" % size
            data = b"".join((prefix, length, server.head_end, out))
        else:
            data = api_head(status, ctype, size, extra, server.defaults, keep_alive, c.http10) + out
        self.emit(data)
        self.response_complete(c, keep_alive)
        self.spare = c  # nothing refers to it any more: the next api call on this connection reuses it

    def emit(self, data: bytes) -> None:
        """Write a whole response: at once if it is the first of this loop pass, else when the pass ends.

        (The module's docstring says why.) ``write`` and ``close`` flush what is held first, and an ASGI
        request's task does before it runs, so responses keep their order.
        """
        if self.out is not None:
            self.out.append(data)  # a list: a pipelined burst must not be copied over and over
            return
        server = self.server
        if server.pass_open:
            self.out = [data]
            server.held.append(self)
        else:
            server.pass_open = True
            self.loop.call_soon(server.flush)
            self.transport.write(data)

    def write(self, data: bytes) -> None:
        """Write ``data`` now, after any responses held for the end of the loop pass."""
        self.flush()
        self.transport.write(data)

    def close(self) -> None:
        """Close once everything owed is written (held responses included)."""
        self.flush()
        self.transport.close()

    def flush(self) -> None:
        """Write the responses held for the end of the loop pass."""
        out = self.out
        if out is not None:
            self.out = None
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # -- called by the server ------------------------------------------------------------------------

    def expire(self) -> None:
        """The keep-alive or header deadline passed: close (a silent or trickling client)."""
        self.deadline = 0.0
        if self.cycle is None:
            self.close()

    def shutdown(self) -> None:
        """The server is draining: close now when idle, else after the current response."""
        if self.ws is not None:
            self.ws.going_away()
        elif self.cycle is None:
            self.close()


@types.coroutine
def _carry(
    ctx: Context, coro: Coroutine[Any, Any, Any], waiting: Any, cancelled: bool
) -> Generator[Any, Any, Any]:
    """Step ``coro`` on from where ``start_fast`` left it, in its own context, inside the runner task.

    ``waiting`` is what it last yielded (the future it awaits), or ``_UNSTARTED``. The runner's task
    sees each future as its own, so wake-ups and cancellation (thrown in here) reach the call unchanged.
    """
    if waiting is _UNSTARTED:
        step: Any = coro.throw if cancelled else coro.send
        arg: Any = CancelledError() if cancelled else None
    elif cancelled and isinstance(waiting, asyncio.Future):
        waiting.cancel()  # as a task cancelled while running would: the awaited future is cancelled
        step, arg = None, None
    elif cancelled:
        step, arg = coro.throw, CancelledError()
    else:
        step, arg = None, None
    while True:
        if step is not None:
            try:
                waiting = ctx.run(step, arg)
            except StopIteration as stop:
                return stop.value
        try:
            arg = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            step, arg = coro.throw, exc
        else:
            step = coro.send


def _log_access(c: RequestCycle) -> None:
    scope = c.scope
    if scope is None:  # an api call answered without a scope
        client = c.proto.client
        path, _, query = split_target(c.target)
        method, version = "POST", "1.0" if c.http10 else "1.1"
    else:
        client = scope["client"]
        path, query = scope["path"], scope["query_string"]
        method, version = scope["method"], scope["http_version"]
    who = f"{client[0]}:{client[1]}" if client else "-"
    target = path + ("?" + query.decode("latin-1") if query else "")
    # repr() escapes control characters, so a hostile path cannot forge log lines.
    access_logger.info('%s - "%s %s HTTP/%s" %d', who, method, repr(target)[1:-1], version, c.status)
