"""One server process: bind, lifespan, the once-a-second tick (Date header, deadlines) and the drain.

The tick replaces per-request timers: it refreshes the pre-encoded ``server``/``date`` headers and closes
connections whose keep-alive or header deadline passed, so a request costs no timer handle. On SIGTERM or
SIGINT the server drains: readiness turns 503 (``app.start_draining``), the connections already queued
on the listener are taken (and served: an api call gets 503), the listener closes, idle
keep-alive connections close, in-flight requests get up to ``graceful_timeout`` to finish (each then
closes its connection), lifespan shutdown runs, and the exit status is 0. A second signal cuts it short.
An embedded server (``asgiserve.Server``, ``asgiserve.serve``, the test clients) passes no signals and
calls ``stop_soon`` instead; ``startup`` and ``finish`` serve connections that come from no listener.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from functools import partial
from typing import TYPE_CHECKING, cast

from .. import server_context
from ..http.access import AccessLog, logged_class
from ..http.auto import new_event_loop, protocol_class
from ..http.connection import DRAIN_GRACE, ServerState
from ..http.state import Live
from .config import Config
from .lifespan import Lifespan, LifespanFailure
from .tls import create_tls_server, tls_context

if TYPE_CHECKING:
    from ..types import ASGIApp

__all__ = ["STARTUP_FAILED", "Server", "bind_socket", "run_server"]

logger = logging.getLogger("asgiserve")
STARTUP_FAILED = 3
_TICK = 0.5
# Makes a connection of a socket taken from the accept queue: (transport, protocol), as asyncio's do.
Accept = Callable[[socket.socket], Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]]


def bind_socket(config: Config) -> socket.socket:
    """The listening socket (shared by every worker)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError:
        sock.close()
        raise
    sock.listen(config.backlog)
    sock.set_inheritable(True)
    return sock


class Server:
    """Serves one ASGI app on an already bound socket until told to stop."""

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        parent: int | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.signals = signals
        # A prefork worker's supervisor: when it is gone (killed with SIGKILL, say), nobody would stop or
        # replace this worker, so it drains and exits on the next tick.
        self.parent = parent
        self.state: ServerState | None = None
        self.stop: asyncio.Event | None = None
        self.forced = False
        self.lifespan: Lifespan | None = None
        self.failure: str | None = None  # why lifespan startup failed
        self.on_started: Callable[[], None] | None = None  # called once the listener accepts
        self.every_second: Callable[[], None] | None = None  # called on the tick, once a second
        self._tick_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop holding our signal handlers
        self.access: AccessLog | None = None
        self._second = -1

    def handle_signal(self) -> None:
        """First signal: drain. Second: stop waiting for in-flight requests."""
        assert self.stop is not None
        if self.stop.is_set():
            self.forced = True
        self.stop.set()

    def stop_soon(self) -> None:
        """Drain, as on a first signal (from the loop's thread; a no-op once draining)."""
        if self.stop is not None and not self.stop.is_set():
            self.stop.set()

    def tick(self) -> None:
        """Refresh the Date header, close connections past their deadline, and (once a second) drain a
        worker whose supervisor is gone."""
        state = self.state
        assert state is not None
        loop = state.loop
        now = state.now = loop.time()
        second = int(time.time())
        if second != self._second:
            self._second = second
            state.set_defaults(b"server: asgiserve\r\ndate: %s\r\n" % formatdate(usegmt=True).encode())
            if self.every_second is not None:
                self.every_second()
            if self.parent is not None and os.getppid() != self.parent:
                logger.warning("Supervisor %d is gone: draining", self.parent)
                self.parent = None
                self.handle_signal()
        for conn in [c for c in state.connections if c.deadline and c.deadline < now]:
            conn.expire()
        self._tick_handle = loop.call_later(_TICK, self.tick)

    async def serve(self, sock: socket.socket) -> int:
        """Run lifespan startup, serve until a signal, drain, run shutdown; return the exit status."""
        config = self.config
        loop = asyncio.get_running_loop()
        tls = tls_context(config)  # from the config alone, so that an embedded Server serves https too
        try:
            if not await self.startup(tls=tls is not None):
                return STARTUP_FAILED
            state = self.state
            assert state is not None and self.stop is not None
            factory = protocol_class(config.http)
            access = self.access = AccessLog(sys.stderr, config.log_format) if config.access_log else None
            if access is not None:
                factory = logged_class(factory, access)
            server: asyncio.AbstractServer
            accept: Accept
            if tls is None:
                server = await loop.create_server(lambda: factory(state), sock=sock, backlog=config.backlog)
                accept = partial(loop.connect_accepted_socket, lambda: factory(state))
            else:
                server = await create_tls_server(loop, lambda: factory(state), sock, config, tls)
                accept = partial(
                    loop.connect_accepted_socket,
                    lambda: factory(state),
                    ssl=tls,
                    ssl_handshake_timeout=config.header_timeout,
                )
            host, port = sock.getsockname()[:2]
            logger.info(
                "Worker %d serving %s on %s://%s:%d%s",
                os.getpid(),
                _name(self.app),
                state.scheme,
                host,
                port,
                _served(self.app),
            )
            if self.on_started is not None:
                self.on_started()
            await self.stop.wait()
            await self.finish(server, sock, accept)
            return 0
        finally:
            if self.access is not None:
                self.access.flush()  # the lines queued since the last batch
            self.close()

    async def startup(self, tls: bool = False) -> bool:
        """Signal handlers, the server state (``tls``: served over https), the tick, lifespan startup:
        False (logged) when it failed."""
        loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self._loop = loop
        for sig in self.signals:
            loop.add_signal_handler(sig, self.handle_signal)
        config = self.config
        state = self.state = ServerState(
            self.app,
            loop,
            config.limits(),
            access_log=config.access_log,
            root_path=config.root_path,
            tls=tls,
        )
        self.tick()
        lifespan = self.lifespan = Lifespan(self.app, state.state)
        try:
            await lifespan.start()
        except LifespanFailure as exc:
            logger.error("%s startup failed: %s", lifespan.name, exc.reason, exc_info=exc.__cause__)
            self.failure = exc.reason
            return False
        return True

    async def finish(
        self,
        listener: asyncio.AbstractServer | None = None,
        sock: socket.socket | None = None,
        accept: Accept | None = None,
    ) -> None:
        """Drain (closing ``listener``; the connections queued on its ``sock`` are served, made by
        ``accept``), then run lifespan shutdown."""
        await self._drain(listener, sock, accept)
        if self.lifespan is not None:
            await self.lifespan.shutdown(self.config.graceful_timeout)

    def close(self) -> None:
        """Stop the tick and give the signals back (after ``serve``, or ``startup`` and ``finish``)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        loop, self._loop = self._loop, None
        if loop is not None:
            for sig in self.signals:
                loop.remove_signal_handler(sig)

    async def _drain(
        self,
        server: asyncio.AbstractServer | None,
        sock: socket.socket | None = None,
        accept: Accept | None = None,
    ) -> None:
        state = self.state
        assert state is not None and self.stop is not None
        start_draining = getattr(self.app, "start_draining", None)
        if callable(start_draining):
            start_draining()
        # Closing a listening socket resets the connections still in its accept queue (clients that
        # already sent a request). Take them first, then close, with no await between the two, so that
        # none is left queued: they are served (an api call gets 503), later ones are refused.
        queued = _accept_queued(sock) if sock is not None and accept is not None else []
        if server is not None:
            server.close()
        loop = state.loop
        late: list[Live] = []
        for queued_sock in queued:
            assert accept is not None
            try:
                late.append(cast("Live", (await accept(queued_sock))[1]))
            except (OSError, asyncio.TimeoutError):
                queued_sock.close()
        state.draining = True
        busy = sum(1 for conn in state.connections if getattr(conn, "current", None) is not None)
        logger.info("Worker %d shutting down: draining %d request(s) in flight", os.getpid(), busy)
        for live in list(state.connections):
            if live not in late:
                live.shutdown()
        for live in late:  # one that sends nothing soon is closed by the tick; its head gets the usual time
            live.deadline = state.now + DRAIN_GRACE
        began = loop.time()
        deadline = began + self.config.graceful_timeout
        while state.connections and loop.time() < deadline and not self.forced:
            await asyncio.sleep(0.05)
        cut = sum(1 for conn in state.connections if getattr(conn, "current", None) is not None)
        if self.access is not None:
            self.access.flush()  # the drained requests' lines before the line that counts them
        logger.info(
            "Worker %d drained %d request(s) in %.2f s",
            os.getpid(),
            busy - min(cut, busy),
            loop.time() - began,
        )
        if state.connections:
            logger.warning(
                "Graceful timeout: closing %d connection(s) with requests in flight", len(state.connections)
            )
            for conn in list(state.connections):
                conn.abort()
            await asyncio.sleep(0)


def _accept_queued(sock: socket.socket) -> list[socket.socket]:
    """The connections waiting in the listening socket's accept queue, taken without blocking."""
    taken: list[socket.socket] = []
    try:
        sock.setblocking(False)
        while True:
            taken.append(sock.accept()[0])
    except OSError:  # BlockingIOError once the queue is empty; any other error ends it as well
        pass
    return taken


def _name(app: object) -> str:
    return str(getattr(app, "name", None) or getattr(app, "__name__", None) or type(app).__name__)


def _served(app: object) -> str:
    """``: apis /a, /b; mounts /v1`` for a service's startup line (nothing for a plain ASGI app)."""
    apis = [str(getattr(h, "route", "?")) for h in getattr(app, "handlers", ())]
    mounts = [str(getattr(m, "path", "?")) for m in getattr(app, "mount_specs", ())]
    if not apis and not mounts:
        return ""
    return f"; apis {', '.join(apis) or 'none'}; mounts {', '.join(mounts) or 'none'}"


def run_server(
    config: Config,
    app: ASGIApp,
    sock: socket.socket,
    *,
    worker: bool = False,
    every_second: Callable[[], None] | None = None,
) -> int:
    """Run one server process on its own event loop (uvloop when available).

    A prefork ``worker`` drains on SIGTERM only: a Ctrl-C reaches the whole process group, and the parent
    turns it into one SIGTERM per worker, which must not count as a second, forcing signal.
    ``every_second`` runs on the tick (a worker's metrics snapshot).
    """
    if not worker:
        server_context.set_worker(0)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    signals = (signal.SIGTERM,) if worker else (signal.SIGTERM, signal.SIGINT)
    try:
        parent = os.getppid() if worker else None
        server = Server(config, app, signals, parent)
        server.every_second = every_second
        return loop.run_until_complete(server.serve(sock))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
