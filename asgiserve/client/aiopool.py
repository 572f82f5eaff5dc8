"""An asyncio HTTP/1.1 connection pool for one origin, behind ``AsyncHTTPClient``.

An I/O driver like the blocking pool (``pool.py``): every decision (reuse, open, wait, retry, the
counters) is its ``PoolBook``'s (``bookkeeper.py``). Each connection is an ``asyncio.Protocol`` that feeds
received bytes straight into the sans-IO ``Response`` (no stream reader in between) and wakes one waiter.
The bookkeeper's "heard nothing while idle" check is free here: the protocol hears about EOF or stray
bytes while idle and marks itself unusable. A request cancelled mid-flight or a stream left unfinished
closes its connection, so the pool never reuses a half-read one nor leaks a slot.

Flow control: a request waiting for its complete body reads at full speed (pausing there would wait
forever); only a stream whose consumer is busy elsewhere (no pending waiter) stops reading once
``_HIGH_WATER`` bytes are buffered, and reading resumes when the consumer asks for more.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from .bookkeeper import OPEN, WAIT, PoolBook, PoolStats, Slot, transport_error
from .wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    ServerDisconnected,
    TLSError,
    TransportError,
)

__all__ = ["AsyncConnection", "AsyncConnectionPool", "AsyncStream"]

_HIGH_WATER = 1 << 20  # pause reading a stream nobody consumes beyond this many buffered bytes
_CLOSE_WAIT = 1.0  # seconds ``close()`` waits for idle connections to be gone (a TLS close_notify exchange)
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
        self.gone = False  # connection_lost was called
        self.on_gone: asyncio.Future[None] | None = None  # set by a pool closing it

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
        self.gone = True
        if self.on_gone is not None and not self.on_gone.done():
            self.on_gone.set_result(None)
        resp = self.resp
        if resp is not None:
            if exc is not None and not resp.complete:
                # A reset or a TLS failure: the same error the blocking pool raises for it.
                if self.error is None:
                    self.error = transport_error(exc)
            else:
                try:
                    resp.feed_eof()
                except ServerDisconnected as err:
                    self.error = err
            self._progress(resp)

    def reusable(self) -> bool:
        """False once the connection heard EOF or stray bytes (or broke)."""
        return self.usable

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


class AsyncConnectionPool(PoolStats[AsyncConnection]):
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
        opener: Callable[[], Awaitable[AsyncConnection]] | None = None,
        retries: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Opens a connected ``AsyncConnection`` by other means than TCP (``asgiserve.testing``'s pipes).
        self.opener = opener
        self._book: PoolBook[AsyncConnection] = PoolBook(
            max_connections, keepalive_expiry, time.monotonic, retries
        )
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return f"<AsyncConnectionPool {self.host}:{self.port} [{self._book.counters()}]>"

    # -- checkout and release ----------------------------------------------------------------------------

    async def _checkout(self, got: Slot, fresh: bool, limit: float | None = None) -> AsyncConnection:
        """The connection for a request the bookkeeper answered ``got`` (``OPEN`` or ``WAIT``) for; waiting
        for a slot and connecting take at most ``limit`` (and the connect timeout)."""
        book = self._book
        wait = self.connect_timeout if limit is None else min(self.connect_timeout, limit)
        started = time.monotonic()
        while got is WAIT:
            await self._wait_for_slot(wait - (time.monotonic() - started))
            found = book.acquire(fresh)
            if found is not OPEN and found is not WAIT:
                return found
            got = found
        try:
            conn = await self._connect(max(wait - (time.monotonic() - started), 0.001))
        except BaseException:
            book.abandon()
            self._wake()
            raise
        book.connected()
        return conn

    async def _connect(self, wait: float) -> AsyncConnection:
        if self.opener is not None:
            return await self.opener()
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
                wait,
            )
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except _ssl.SSLError as exc:
            raise TLSError(f"TLS handshake with {self.host}:{self.port} failed: {exc}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return conn

    async def _wait_for_slot(self, wait: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(max(wait, 0.0), _pool_timeout, waiter, wait)
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
        self._book.release(conn, reusable and conn.usable and not conn.paused)
        self._wake()

    # -- requests ----------------------------------------------------------------------------------------

    async def request(
        self, data: bytes, *, head: bool = False, stream: bool = False
    ) -> tuple[Response, AsyncConnection]:
        """Send ``data`` and return the response (complete unless ``stream``) and its connection.

        The read timeout bounds the whole call (waiting for a slot, connecting, retries, writing and
        reading the response, or a stream's head): one deadline, not one per step.
        """
        fresh = False
        attempt = 0
        total = self.read_timeout
        deadline = None if total is None else time.monotonic() + total
        while True:
            attempt += 1
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ReadTimeout(f"no response within {total:g} s")
            # Reusing an idle connection needs no await; only opening one or waiting for a slot does.
            got = self._book.acquire(fresh)
            conn = await self._checkout(got, fresh, left) if got is OPEN or got is WAIT else got
            resp = conn.resp = Response(head)
            conn.error = None
            conn.stream = stream
            conn.requests += 1
            sent = False
            try:
                # The liveness check: an EOF or stray bytes seen while idle made the connection unusable,
                # and nothing awaited between the checkout and this write, so the loop's latest news is used.
                if not conn.usable or conn.transport is None:
                    raise ServerDisconnected("server closed the connection")
                sent = True
                conn.transport.write(data)
                await conn.wait(
                    resp,
                    WANT_HEADERS if stream else WANT_COMPLETE,
                    None if deadline is None else max(deadline - time.monotonic(), 0.001),
                )
            except BaseException as exc:
                self.release(conn, False)
                if not self._book.retry(conn, resp.received, exc, data, sent, attempt):
                    error = transport_error(exc)
                    if error is exc:
                        raise
                    raise error from None
                fresh = True
                continue
            if not stream:
                self.release(conn, resp.reusable)
            return resp, conn

    async def stream(self, data: bytes) -> tuple[Response, AsyncStream]:
        """Send ``data`` and return the response once its head arrived, with a stream over its body."""
        resp, conn = await self.request(data, stream=True)
        return resp, AsyncStream(self, conn, resp)

    async def close(self) -> None:
        """Close idle connections now and any active one when it is released.

        The idle ones are waited for (briefly): a TLS transport's close is an exchange of close_notify
        alerts, which a loop ending right after (``asyncio.run``) would cut off, leaving its socket open
        until the garbage collector finds it. One still open after ``_CLOSE_WAIT`` is aborted.
        """
        idle = [conn for conn in self._book.idle if not conn.gone]
        loop = asyncio.get_running_loop()
        for conn in idle:
            conn.on_gone = loop.create_future()
        self._book.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(TransportError("the connection pool is closed"))
        pending = [conn.on_gone for conn in idle if conn.on_gone is not None and not conn.on_gone.done()]
        if pending:
            await asyncio.wait(pending, timeout=_CLOSE_WAIT)
        for conn in idle:
            if not conn.gone and conn.transport is not None:
                conn.transport.abort()


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
            self.pool.release(conn, self.resp.reusable)
