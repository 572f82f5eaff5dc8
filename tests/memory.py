"""The server's connections over an in-memory transport: the real protocol classes, no sockets, no clock.

``connect(kind, app, **limits)`` builds a server state and one connection the way the server does (one
function, ``_build``, knows how) on a fresh asyncio loop, and returns a ``Conn`` that feeds bytes as reads
and runs the loop until nothing but timers is left to run (timers never fire unless real time passes:
nothing here waits for it). What the server writes is kept, parsed with the same
``tests.rawhttp`` parser the socket tests use, and every callback error the loop sees fails the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from tests.rawhttp import Exchange, parse_responses

if TYPE_CHECKING:
    from asgiserve.http.connection import ServerState
    from asgiserve.types import ASGIApp

__all__ = ["DATE_HEADERS", "PARSERS", "Conn", "MemoryLoop", "MemoryTransport", "Server", "connect"]

PARSERS = ["httptools", "h11"]
# The server's tick refreshes these every second; here they are fixed, so responses repeat byte for byte.
DATE_HEADERS = b"server: asgiserve\r\ndate: Mon, 23 Nov 2026 12:00:00 GMT\r\n"
_QUIET = 2  # loop passes with nothing else to run before the server counts as quiet
_MAX_PASSES = 100_000


class ServerProtocol(Protocol):
    """What a connection of the server is to its transport (``asyncio.Protocol``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport."""

    def data_received(self, data: bytes) -> None:
        """Bytes read from the client."""

    def eof_received(self) -> bool | None:
        """The client closed its sending side."""

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone."""

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark."""

    def resume_writing(self) -> None:
        """The transport's buffer drained."""


class MemoryTransport(asyncio.Transport):
    """A transport whose peer is the test: writes are kept, reads are handed in by ``Conn.send``.

    It behaves as asyncio's socket transport does where the server can tell: data sent while reading is
    paused waits for ``resume_reading``, ``close`` calls ``connection_lost`` on a later loop pass, writes
    after ``close`` are dropped, and with ``high_water`` set, ``pause_writing`` comes once more than that
    many written bytes are not yet taken by the peer (``Conn.take``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, high_water: int | None = None) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: ServerProtocol | None = None
        self.written = bytearray()  # all the server wrote, taken or not
        self.taken = 0  # how much of ``written`` the peer has read (flow control)
        self.high_water = high_water
        self.write_paused = False
        self.closed = False
        self.lost = False
        self.reading = True
        self.pending: list[bytes] = []  # sent while reading was paused

    # -- the server's side ---------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data`` (dropped once closed, as asyncio drops it)."""
        if self.closed:
            return
        self.written += data
        if self.high_water is not None and not self.write_paused and self.buffered() > self.high_water:
            self.write_paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write each piece."""
        for data in list_of_data:
            self.write(data)

    def buffered(self) -> int:
        """Written bytes the peer has not taken yet."""
        return len(self.written) - self.taken

    def close(self) -> None:
        """Close after what was written (all of it is kept already); ``connection_lost`` follows."""
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self._lose, None)

    def abort(self) -> None:
        """Close at once."""
        self.close()

    def is_closing(self) -> bool:
        """True once closed by either side."""
        return self.closed

    def pause_reading(self) -> None:
        """Hold further reads back."""
        self.reading = False

    def resume_reading(self) -> None:
        """Deliver what was held back, on a later loop pass, as a socket read would."""
        if not self.reading:
            self.reading = True
            if self.pending and not self.closed:
                self.loop.call_soon(self._deliver)

    def is_reading(self) -> bool:
        """Whether reads are delivered."""
        return self.reading and not self.closed

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken when flow control is on, else 0."""
        return self.buffered() if self.high_water is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        high = self.high_water if self.high_water is not None else 0
        return high // 4, high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the high-water mark (``None`` leaves it)."""
        if high is not None:
            self.high_water = high

    def can_write_eof(self) -> bool:
        """No half-close from the server."""
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        """Loopback addresses, as a real connection has."""
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    # -- the peer's side -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """The peer sent ``data``: a read now, or once reading resumes."""
        if self.closed:
            return
        if self.reading and not self.pending:
            assert self.protocol is not None
            self.protocol.data_received(data)
        else:
            self.pending.append(data)

    def _deliver(self) -> None:
        while self.pending and self.reading and not self.closed:
            assert self.protocol is not None
            self.protocol.data_received(self.pending.pop(0))

    def take(self, size: int | None = None) -> None:
        """The peer read ``size`` more bytes (all when None): resume writing once under a quarter."""
        self.taken = len(self.written) if size is None else min(self.taken + size, len(self.written))
        if self.write_paused and self.buffered() <= (self.high_water or 0) // 4:
            self.write_paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()

    def reset(self, exc: Exception | None = None) -> None:
        """The peer is gone: closed at once, ``connection_lost`` now."""
        self.closed = True
        self._lose(exc)

    def _lose(self, exc: Exception | None) -> None:
        if not self.lost:
            self.lost = True
            assert self.protocol is not None
            self.protocol.connection_lost(exc)


class MemoryLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, able to tell when nothing is left to run but timers and the caller."""

    def idle(self) -> bool:
        """True when no callback is ready (called from a task: its own wake-up is not queued yet)."""
        return not self._ready  # type: ignore[attr-defined]


class Conn:
    """One client connection to a ``Server``: send bytes, run the loop, read what came back."""

    def __init__(self, server: Server, protocol: ServerProtocol, transport: MemoryTransport) -> None:
        self.server = server
        self.protocol = protocol
        self.transport = transport
        self.seen = 0  # how much of ``raw`` earlier ``exchange`` calls returned

    @property
    def raw(self) -> bytes:
        """Everything the server wrote on this connection."""
        return bytes(self.transport.written)

    @property
    def closed(self) -> bool:
        """Whether it is closed (by the server, unless ``lose`` or ``eof`` was called)."""
        return self.transport.closed

    def send(self, data: bytes, settle: bool = True) -> Conn:
        """Deliver ``data`` as one read from a loop callback (as a socket read is), then run until quiet."""
        self.server.loop.call_soon(self.transport.feed, data)
        if settle:
            self.settle()
        return self

    def send_pieces(self, pieces: list[bytes]) -> Conn:
        """Deliver each piece as its own read, running until quiet after each."""
        for piece in pieces:
            self.send(piece)
        return self

    def settle(self, until: Callable[[], bool] | None = None) -> Conn:
        """Run the loop until ``until()`` holds, or, without it, until nothing but timers is left to run."""
        self.server.run(until)
        return self

    def exchange(self, data: bytes, head_request: bool = False) -> Exchange:
        """Send ``data``, run until quiet, and parse what arrived since the last ``exchange``."""
        self.send(data)
        raw = self.raw[self.seen :]
        self.seen += len(raw)
        return Exchange(raw, self.closed, parse_responses(raw, head_request))

    def result(self, head_request: bool = False) -> Exchange:
        """Everything the connection received, parsed; ``closed`` says whether the server closed it."""
        raw = self.raw
        return Exchange(raw, self.closed, parse_responses(raw, head_request))

    def eof(self) -> Conn:
        """The client shuts its sending side, as a socket's ``shutdown(SHUT_WR)``; then run until quiet."""

        def shut() -> None:
            if not self.transport.closed and not self.protocol.eof_received():
                self.transport.close()

        self.server.loop.call_soon(shut)
        return self.settle()

    def lose(self, exc: Exception | None = None) -> Conn:
        """The client is gone (reset, or closed both ways): ``connection_lost``; then run until quiet."""

        self.server.loop.call_soon(self.transport.reset, exc)
        return self.settle()


class Server:
    """A server state on its own loop, as one server process holds it, with its app's lifespan started."""

    def __init__(
        self,
        kind: str,
        app: ASGIApp,
        loop: MemoryLoop,
        state: ServerState,
        factory: Callable[[], ServerProtocol],
    ) -> None:
        self.kind = kind
        self.app = app
        self.state = state
        self.loop = loop
        self.factory = factory
        self.errors: list[dict[str, object]] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.conns: list[Conn] = []
        self.shutdown: Callable[[], Awaitable[None]] | None = None

    def connect(self, high_water: int | None = None) -> Conn:
        """A new connection (``connection_made`` runs now, as when the listener accepts)."""
        transport = MemoryTransport(self.loop, high_water)
        protocol = self.factory()
        transport.protocol = protocol
        protocol.connection_made(transport)
        conn = Conn(self, protocol, transport)
        self.conns.append(conn)
        return conn

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run loop passes until ``until()`` holds, or (without it) until nothing but this is runnable."""
        loop = self.loop

        async def passes() -> None:
            idle = 0
            for _ in range(_MAX_PASSES):
                await asyncio.sleep(0)
                if until is not None:
                    if until():
                        return
                    continue
                idle = idle + 1 if loop.idle() else 0
                if idle >= _QUIET:
                    return
            raise AssertionError("the connection never went quiet" if until is None else "never reached")

        loop.run_until_complete(passes())
        self.check()

    def check(self) -> None:
        """Fail on any error the loop caught (an exception in a callback, a task's unretrieved one)."""
        if self.errors:
            errors, self.errors = self.errors, []
            raise AssertionError(f"the event loop caught: {errors}")

    def close(self) -> None:
        """Drop the connections, run the app's lifespan shutdown and close the loop."""
        loop = self.loop
        for conn in self.conns:
            conn.transport.reset()
        if self.shutdown is not None:
            loop.run_until_complete(self.shutdown())
        loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        self.check()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _build(
    kind: str,
    app: ASGIApp,
    loop: asyncio.AbstractEventLoop,
    access_log: bool,
    root_path: str,
    limits: dict[str, float],
) -> tuple[ServerState, Callable[[], ServerProtocol]]:
    """The server state and the connection factory, as ``asgiserve.server.server.Server.serve`` makes them.

    The one place that knows how the server builds them: adapt it when their constructors change.
    ``limits`` are ``asgiserve.limits.Limits`` fields (``max_body_size``, ``max_headers``...).
    """
    from asgiserve.http.auto import protocol_class
    from asgiserve.http.connection import ServerState
    from asgiserve.limits import DEFAULT_LIMITS, Limits

    settings = Limits(**{**dataclasses.asdict(DEFAULT_LIMITS), **limits})
    state = ServerState(app, loop, settings, access_log=access_log, root_path=root_path)
    state.set_defaults(DATE_HEADERS)  # what the server's tick sets every second
    cls = protocol_class(kind)
    if access_log:
        from asgiserve.http.access import AccessLog, logged_class

        cls = logged_class(cls, AccessLog(sys.stderr))
    return state, lambda: cls(state)


def connect(
    kind: str,
    app: ASGIApp,
    *,
    lifespan: bool = True,
    high_water: int | None = None,
    access_log: bool = False,
    root_path: str = "",
    **limits: float,
) -> Conn:
    """A connection to a server running ``app`` with the ``kind`` parser ("httptools" or "h11").

    ``limits`` are the server's (``max_body_size=...``: see ``asgiserve.limits.Limits``). The app's lifespan
    startup runs first, as the server runs it, unless ``lifespan`` is false; ``high_water`` turns on the
    transport's flow control. More connections to the same server come from ``conn.server.connect()``, and
    ``conn.server.close()`` ends it.
    """
    from asgiserve.server.lifespan import Lifespan

    loop = MemoryLoop()
    state, factory = _build(kind, app, loop, access_log, root_path, limits)
    server = Server(kind, app, loop, state, factory)
    if lifespan:
        span = Lifespan(app, state.state)
        if not loop.run_until_complete(span.startup()):
            loop.close()
            raise RuntimeError("the app's lifespan startup failed")
        server.shutdown = lambda: span.shutdown(5.0)
    return server.connect(high_water)
