"""An asyncio HTTP/1.1 connection pool for one origin, behind ``AsyncHTTPClient``.

Each connection is an ``asyncio.Protocol`` that feeds received bytes straight into the sans-IO
``Response`` (no stream reader in between) and wakes one waiter. The reuse rules are those of the
blocking pool (see ``pool.py``); the "readable or closed" check is free here because the protocol hears
about EOF or stray bytes while idle and marks itself unusable. A request cancelled mid-flight or a stream
left unfinished closes its connection, so the pool never reuses a half-read one nor leaks a slot.

Flow control: a request waiting for its complete body reads at full speed (pausing there would wait
forever); only a stream whose consumer is busy elsewhere (no pending waiter) stops reading once
``_HIGH_WATER`` bytes are buffered, and reading resumes when the consumer asks for more.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from collections import deque
from collections.abc import AsyncIterator

from .wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    ServerDisconnected,
    TransportError,
)

__all__ = ["AsyncConnection", "AsyncConnectionPool", "AsyncStream"]

_HIGH_WATER = 1 << 20  # pause reading a stream nobody consumes beyond this many buffered bytes
WANT_HEADERS, WANT_CHUNK, WANT_COMPLETE = 0, 1, 2


class AsyncConnection(asyncio.Protocol):
    """One connection: the current response, a waiter for progress, and idle-time health."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.resp: Response | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.usable = True
        self.paused = False
        self.stream = False
        self.requests = 0
        self.idle_since = 0.0
        self.want = WANT_COMPLETE

    def __repr__(self) -> str:
        state = "open" if self.usable else "unusable"
        return f"<AsyncConnection {state}, {self.requests} requests>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:  # bytes while idle: the connection's framing can no longer be trusted
            self.usable = False
            return
        try:
            resp.feed(data)
        except RemoteProtocolError as exc:
            self.error = exc
            self.usable = False
        self._progress(resp)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        resp = self.resp
        if resp is not None:
            try:
                resp.feed_eof()
            except ServerDisconnected as err:
                self.error = err
            self._progress(resp)

    def _ready(self, resp: Response) -> bool:
        want = self.want
        if want == WANT_COMPLETE:
            return resp.complete
        if want == WANT_HEADERS:
            return resp.headers_done
        return resp.complete or bool(resp.chunks)

    def _progress(self, resp: Response) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.error is not None:
                waiter.set_exception(self.error)
            elif self._ready(resp):
                waiter.set_result(None)
            return
        # Nobody waits: a stream's consumer is busy with earlier chunks, so bound what piles up for it.
        if (
            self.stream
            and self.usable
            and not self.paused
            and resp.buffered > _HIGH_WATER
            and not resp.complete
            and self.transport is not None
        ):
            self.paused = True
            self.transport.pause_reading()

    def _expire(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ReadTimeout("timed out waiting for the server's response"))

    async def wait(self, resp: Response, want: int, timeout: float | None) -> None:
        """Wait until ``resp`` reached ``want`` (headers, a body chunk, or completion)."""
        self.want = want
        if self.error is not None:
            raise self.error
        if self._ready(resp):
            return
        if self.paused and self.transport is not None:  # the consumer caught up
            self.paused = False
            self.transport.resume_reading()
        if not self.usable:
            raise ServerDisconnected("server closed the connection")
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        # A timer on the waiter instead of asyncio.wait_for, which would cost a task per request.
        timer = loop.call_later(timeout, self._expire) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        """Close the transport (idempotent)."""
        self.usable = False
        if self.transport is not None:
            self.transport.close()


def _pool_timeout(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"no free connection within {timeout:g} s"))


class AsyncConnectionPool:
    """Keep-alive connections to one host and port for one event loop, at most ``max_connections``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: _ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[AsyncConnection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.opened = 0
        self.reused = 0
        self.discarded = 0
        self.retried = 0

    def __repr__(self) -> str:
        return (
            f"<AsyncConnectionPool {self.host}:{self.port} [idle {len(self._idle)}, active {self.active}, "
            f"opened {self.opened}, reused {self.reused}, discarded {self.discarded}, "
            f"retried {self.retried}]>"
        )

    @property
    def active(self) -> int:
        """Connections checked out right now."""
        return self._open - len(self._idle)

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    # -- bookkeeping -------------------------------------------------------------------------------------

    async def _checkout(self, fresh: bool = False) -> AsyncConnection:
        if self._closed:
            raise TransportError("the connection pool is closed")
        now = time.monotonic()
        idle = self._idle
        while idle and not fresh:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < self.keepalive_expiry:
                self.reused += 1
                return conn
            self._open -= 1
            self.discarded += 1
            conn.close()
        if self._open >= self.max_connections:
            await self._wait_for_slot()
            return await self._checkout(fresh)
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    AsyncConnection,
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self.opened += 1
        return conn

    async def _wait_for_slot(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.connect_timeout, _pool_timeout, waiter, self.connect_timeout)
        try:
            await waiter
        except BaseException:
            # Woken (handed the freed slot) but cancelled before running: pass the slot on, or the
            # other waiters would time out while a connection sits idle.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake()
            raise
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: AsyncConnection, reusable: bool) -> None:
        """Put a connection back (or close it) and wake one task waiting for a slot."""
        conn.resp = None
        conn.waiter = None
        if reusable and conn.usable and not self._closed and not conn.paused:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._open -= 1
            self.discarded += 1
            conn.close()
        self._wake()

    # -- requests ----------------------------------------------------------------------------------------

    async def request(
        self, data: bytes, *, head: bool = False, stream: bool = False
    ) -> tuple[Response, AsyncConnection]:
        """Send ``data`` and return the response (complete unless ``stream``) and its connection."""
        conn = await self._checkout()
        try:
            resp = await self._roundtrip(conn, data, head, stream)
        except (ServerDisconnected, OSError) as exc:
            resp_seen = conn.resp is not None and conn.resp.received
            self.release(conn, False)
            if conn.requests == 1 or resp_seen or isinstance(exc, TimeoutError):
                raise
            # A reused connection that died before any response byte: the server closed it while idle
            # and the close reached us only after the checkout, so nothing reached the app. (A server
            # that reads a request and then closes without answering looks the same; HTTP/1.1 gives
            # the client no way to tell, and such a request is sent twice.)
            self.retried += 1
            conn = await self._checkout(fresh=True)
            try:
                resp = await self._roundtrip(conn, data, head, stream)
            except BaseException:
                self.release(conn, False)
                raise
        except BaseException:
            self.release(conn, False)
            raise
        if not stream:
            self.release(conn, resp.keep_alive and not resp.extra)
        return resp, conn

    async def _roundtrip(self, conn: AsyncConnection, data: bytes, head: bool, stream: bool) -> Response:
        resp = conn.resp = Response(head)
        conn.error = None
        conn.stream = stream
        conn.requests += 1
        # The liveness check: an EOF or stray bytes seen while idle made the connection unusable, and
        # nothing awaited between the checkout and this write, so the loop's latest news is used.
        if not conn.usable or conn.transport is None:
            raise ServerDisconnected("server closed the connection")
        conn.transport.write(data)
        await conn.wait(resp, WANT_HEADERS if stream else WANT_COMPLETE, self.read_timeout)
        return resp

    async def close(self) -> None:
        """Close idle connections now and any active one when it is released."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for conn in idle:
            conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(TransportError("the connection pool is closed"))


class AsyncStream:
    """Async-iterates a streamed response's body chunks and releases the connection after."""

    def __init__(self, pool: AsyncConnectionPool, conn: AsyncConnection, resp: Response) -> None:
        self.pool = pool
        self.conn: AsyncConnection | None = conn
        self.resp = resp

    async def __aiter__(self) -> AsyncIterator[bytes]:
        resp = self.resp
        try:
            while True:
                if resp.chunks:
                    yield resp.take_body()
                    continue
                if resp.complete:
                    break
                assert self.conn is not None
                await self.conn.wait(resp, WANT_CHUNK, self.pool.read_timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection; one whose body was not read to the end is closed, not reused."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.release(conn, self.resp.complete and self.resp.keep_alive and not self.resp.extra)
