"""A blocking-socket HTTP/1.1 connection pool for one origin, behind ``SyncHTTPClient``.

Bookkeeping (which connection to reuse, open or close) happens under one lock and is kept apart from the
I/O, which runs outside it. Rules:
- idle connections are reused last-in first-out, but only while younger than ``keepalive_expiry`` (kept
  below servers' usual 5 s keep-alive) and only if a zero-timeout poll finds nothing to read: a readable
  idle socket is either closed by the server or holds stray bytes, and both mean "do not reuse";
- a reused connection that fails before the first response byte is replaced once, transparently: the
  request cannot have reached the application, so this is safe for every method;
- a connection goes back to the pool only after a complete response that allows keep-alive; a stream
  closed early, an error or a timeout closes it, so nothing half-read is ever reused.
"""

from __future__ import annotations

import select
import socket
import ssl as _ssl
import threading
import time
from collections.abc import Iterator

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

__all__ = ["Connection", "ConnectionPool", "SyncStream"]

_BUFSIZE = 65536
_STALE = (OSError, ServerDisconnected)


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

    def readable(self) -> bool:
        """True when the idle socket has data or EOF pending (not reusable either way)."""
        return bool(self._poll.poll(0))

    def roundtrip(self, data: bytes, resp: Response, until_complete: bool) -> None:
        """Send a request and read until its headers (or whole response) arrived."""
        self.requests += 1
        self.sock.sendall(data)
        self.read(resp, until_complete)

    def read(self, resp: Response, until_complete: bool) -> None:
        """Receive into ``resp`` until it is complete, or until its headers are when streaming."""
        recv_into, view = self.sock.recv_into, self.view
        while not (resp.complete or (resp.headers_done and not until_complete)):
            n = recv_into(view)
            if n:
                resp.feed(view[:n])
            else:
                resp.feed_eof()

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


class ConnectionPool:
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
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[Connection] = []
        self._open = 0
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self.opened = 0
        self.reused = 0
        self.discarded = 0
        self.retried = 0

    def __repr__(self) -> str:
        return (
            f"<ConnectionPool {self.host}:{self.port} [idle {len(self._idle)}, active {self.active}, "
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

    def _checkout(self, fresh: bool = False) -> Connection | None:
        """An idle connection to reuse, or None after reserving a slot for a new one."""
        stale: list[Connection] = []
        deadline: float | None = None
        with self._cond:
            if self._closed:
                raise TransportError("the connection pool is closed")
            while True:
                now = time.monotonic()
                while self._idle and not fresh:
                    conn = self._idle.pop()
                    if now - conn.idle_since < self.keepalive_expiry and not conn.readable():
                        self.reused += 1
                        break
                    self._open -= 1
                    stale.append(conn)
                else:
                    conn = None
                if conn is not None or self._open < self.max_connections:
                    if conn is None:
                        self._open += 1
                    break
                if deadline is None:
                    deadline = now + self.connect_timeout
                if now >= deadline or not self._cond.wait(deadline - now):
                    raise PoolTimeout(f"no free connection within {self.connect_timeout:g} s")
        for old in stale:
            self.discarded += 1
            old.close()
        return conn

    def _release(self, conn: Connection, reusable: bool) -> None:
        with self._cond:
            if reusable and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                self._open -= 1
                self.discarded += 1
                conn.close()
            self._cond.notify()

    def _connect(self) -> Connection:
        """Open a new connection in a slot already reserved by ``_checkout``."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except TimeoutError:
            self._release_slot()
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            self._release_slot()
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except OSError as exc:
            sock.close()
            self._release_slot()
            raise ConnectError(f"TLS handshake with {self.host}:{self.port} failed: {exc}") from None
        self.opened += 1
        return Connection(sock)

    def _release_slot(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    # -- requests ----------------------------------------------------------------------------------------

    def request(
        self, data: bytes, *, head: bool = False, stream: bool = False
    ) -> tuple[Response, Connection]:
        """Send ``data`` (a whole request) and return the response with the connection it holds.

        Without ``stream`` the response is complete and the connection already released; with it, the
        caller must hand both to ``SyncStream`` (or ``finish``) to read the body and release it.
        """
        conn = self._checkout() or self._connect()
        resp = Response(head)
        try:
            conn.roundtrip(data, resp, not stream)
        except _STALE as exc:
            self._release(conn, False)
            if conn.requests == 1 or resp.received or isinstance(exc, TimeoutError):
                raise _translate(exc) from None
            # A reused connection that died before any response byte. ``_checkout`` polled it just
            # before this send, so the usual case (an idle keep-alive closed by the server) never gets
            # here; what is left is a close racing the send, where nothing reached the app. (A server
            # that reads a request and then closes without answering looks the same; HTTP/1.1 gives
            # the client no way to tell, and such a request is sent twice.)
            self.retried += 1
            conn = self._checkout(fresh=True) or self._connect()
            resp = Response(head)
            try:
                conn.roundtrip(data, resp, not stream)
            except BaseException as exc2:
                self._release(conn, False)
                raise _translate(exc2) from None
        except BaseException as exc:
            self._release(conn, False)
            raise _translate(exc) from None
        if not stream:
            self._release(conn, resp.keep_alive and not resp.extra)
        return resp, conn

    def finish(self, conn: Connection, resp: Response) -> None:
        """Give a streamed response's connection back (reused only if the body was read to its end)."""
        self._release(conn, resp.complete and resp.keep_alive and not resp.extra)

    def close(self) -> None:
        """Close idle connections now and any active one when it is released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


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
                    raise _translate(exc) from None
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection; one whose body was not read to the end is closed, not reused."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.finish(conn, self.resp)


def _translate(exc: BaseException) -> BaseException:
    """Socket-level exceptions as the client's transport errors."""
    if isinstance(exc, TransportError) or not isinstance(exc, OSError):
        return exc
    if isinstance(exc, TimeoutError):
        return ReadTimeout("timed out waiting for the server's response")
    if isinstance(exc, _ssl.SSLError):
        return RemoteProtocolError(f"TLS error: {exc}")
    return ServerDisconnected(f"connection lost: {exc}")
