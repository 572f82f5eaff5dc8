"""A blocking-socket HTTP/1.1 connection pool for one origin, behind ``SyncHTTPClient``.

An I/O driver: every decision (reuse, open, wait, retry, the counters) is its ``PoolBook``'s
(``bookkeeper.py``), taken under one lock; connecting, sending and reading happen outside it. The
bookkeeper's "heard nothing while idle" check is a zero-timeout poll here: a readable idle socket is
either closed by the server or holds stray bytes.
"""

from __future__ import annotations

import select
import socket
import ssl as _ssl
import threading
import time
from collections.abc import Iterator
from time import monotonic
from typing import Literal

from .bookkeeper import OPEN, WAIT, PoolBook, PoolStats, Slot, transport_error
from .wire import ConnectError, ConnectTimeout, PoolTimeout, ReadTimeout, Response, TLSError

__all__ = ["Connection", "ConnectionPool", "SyncStream", "handshake_error"]

_BUFSIZE = 65536


def handshake_error(exc: OSError, host: str, port: int) -> ConnectError:
    """The client's error for a failed TLS handshake: ``TLSError`` unless the network itself failed."""
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(f"TLS handshake with {host}:{port} timed out")
    if isinstance(exc, _ssl.SSLError):
        return TLSError(f"TLS handshake with {host}:{port} failed: {exc}")
    return ConnectError(f"TLS handshake with {host}:{port} failed: {exc}")


class Connection:
    """One blocking socket with a reusable receive buffer."""

    __slots__ = ("_poll", "buf", "idle_since", "requests", "sock", "view")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(_BUFSIZE)
        self.view = memoryview(self.buf)
        self.requests = 0
        self.idle_since = 0.0
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def __repr__(self) -> str:
        state = "closed" if self.sock.fileno() < 0 else "open"
        return f"<Connection {state}, {self.requests} requests>"

    def reusable(self) -> bool:
        """False when the idle socket has data or EOF pending (not reusable either way)."""
        return not self._poll.poll(0)

    def roundtrip(self, data: bytes, resp: Response, until_complete: bool, timeout: float | None) -> None:
        """Send a request and read until its headers (or whole response) arrived, within ``timeout``."""
        self.requests += 1
        self.sock.sendall(data)
        self.read(resp, until_complete, timeout)

    def read(self, resp: Response, until_complete: bool, timeout: float | None) -> None:
        """Receive into ``resp`` until it is complete, or until its headers are when streaming.

        ``timeout`` (the socket's own) bounds the whole read, not each ``recv``: a server trickling a byte
        at a time must not hold the call past it (the asyncio pool's wait is one timer too).
        """
        sock = self.sock
        recv_into, view = sock.recv_into, self.view
        start = monotonic()
        base = sock.gettimeout()
        # Less than the socket's own when the call's deadline is nearer (it waited for a slot, or retried).
        narrowed = timeout is not None and (base is None or timeout < base)
        if narrowed:
            sock.settimeout(timeout)
        try:
            while not (resp.complete or (resp.headers_done and not until_complete)):
                n = recv_into(view)
                if n:
                    resp.feed(view[:n])
                else:
                    resp.feed_eof()
                if timeout is not None and not resp.complete:
                    left = start + timeout - monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no whole response within {timeout:g} s")
                    sock.settimeout(left)
                    narrowed = True
        finally:
            if narrowed:
                sock.settimeout(base)

    def read_some(self, resp: Response) -> None:
        """Receive one batch of bytes into ``resp``."""
        n = self.sock.recv_into(self.view)
        if n:
            resp.feed(self.view[:n])
        else:
            resp.feed_eof()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass


class ConnectionPool(PoolStats[Connection]):
    """Keep-alive connections to one host and port, at most ``max_connections`` open at once."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: _ssl.SSLContext | None = None,
        max_connections: int = 32,
        keepalive_expiry: float = 4.0,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 30.0,
        retries: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._book: PoolBook[Connection] = PoolBook(
            max_connections, keepalive_expiry, time.monotonic, retries
        )
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0  # threads waiting for a slot: a release without any skips the notify

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.host}:{self.port} [{self._book.counters()}]>"

    # -- checkout and release ----------------------------------------------------------------------------

    def _checkout(self, fresh: bool = False, limit: float | None = None) -> Connection:
        """A connection: an idle one the bookkeeper lets us reuse, else a new one once a slot is free;
        waiting for a slot and connecting take at most ``limit`` (and the connect timeout)."""
        wait = self.connect_timeout if limit is None else min(self.connect_timeout, limit)
        with self._cond:
            got = self._book.acquire(fresh)
            if got is WAIT:
                got = self._wait_for_slot(fresh, wait)
        if got is OPEN:
            return self._connect(wait)
        return got

    def _wait_for_slot(self, fresh: bool, wait: float) -> Connection | Literal[Slot.OPEN]:
        """Wait (holding the condition) until the bookkeeper has a connection or a slot; ``PoolTimeout``."""
        deadline = time.monotonic() + wait
        self._waiting += 1
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise PoolTimeout(f"no free connection within {wait:g} s")
                got = self._book.acquire(fresh)
                if got is not WAIT:
                    return got
        finally:
            self._waiting -= 1

    def _release(self, conn: Connection, reusable: bool) -> None:
        with self._cond:
            self._book.release(conn, reusable)
            if self._waiting:
                self._cond.notify()

    def _connect(self, wait: float) -> Connection:
        """Open a new connection in a slot the bookkeeper reserved, within ``wait`` seconds."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=max(wait, 0.001))
        except TimeoutError:
            self._abandon()
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            self._abandon()
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.ssl_context is not None:
                # The handshake runs under the connect timeout (still the socket's).
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except OSError as exc:
            sock.close()
            self._abandon()
            raise handshake_error(exc, self.host, self.port) from None
        with self._cond:
            self._book.connected()
        return Connection(sock)

    def _abandon(self) -> None:
        with self._cond:
            self._book.abandon()
            if self._waiting:
                self._cond.notify()

    # -- requests ----------------------------------------------------------------------------------------

    def request(
        self, data: bytes, *, head: bool = False, stream: bool = False
    ) -> tuple[Response, Connection]:
        """Send ``data`` (a whole request) and return the response with the connection it holds.

        Without ``stream`` the response is complete and the connection already released; with it, the
        caller must hand both to ``SyncStream`` (or ``finish``) to read the body and release it. The read
        timeout bounds the whole call (waiting for a slot, connecting, retries, writing and reading the
        response, or a stream's head): one deadline, not one per step.
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
            conn = self._checkout(fresh, left)
            resp = Response(head)
            try:
                conn.roundtrip(
                    data,
                    resp,
                    not stream,
                    None if deadline is None else max(deadline - time.monotonic(), 0.001),
                )
            except BaseException as exc:
                self._release(conn, False)
                if not self._book.retry(conn, resp.received, exc, data, True, attempt):
                    raise transport_error(exc) from None
                fresh = True
                continue
            if not stream:
                self._release(conn, resp.reusable)
            return resp, conn

    def stream(self, data: bytes) -> tuple[Response, SyncStream]:
        """Send ``data`` and return the response once its head arrived, with a stream over its body."""
        resp, conn = self.request(data, stream=True)
        return resp, SyncStream(self, conn, resp)

    def finish(self, conn: Connection, resp: Response) -> None:
        """Give a streamed response's connection back (reused only if the body was read to its end)."""
        self._release(conn, resp.reusable)

    def close(self) -> None:
        """Close idle connections now and any active one when it is released."""
        with self._cond:
            self._book.close()
            self._cond.notify_all()


class SyncStream:
    """Iterates a streamed response's body chunks as they arrive and releases the connection after."""

    def __init__(self, pool: ConnectionPool, conn: Connection, resp: Response) -> None:
        self.pool = pool
        self.conn: Connection | None = conn
        self.resp = resp

    def __iter__(self) -> Iterator[bytes]:
        resp = self.resp
        try:
            while True:
                if resp.chunks:
                    yield resp.take_body()
                    continue
                if resp.complete:
                    break
                assert self.conn is not None
                try:
                    self.conn.read_some(resp)
                except BaseException as exc:
                    raise transport_error(exc) from None
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection; one whose body was not read to the end is closed, not reused."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.finish(conn, self.resp)
