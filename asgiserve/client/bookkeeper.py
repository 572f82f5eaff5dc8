"""The connection pools' bookkeeping, sans-IO: what to reuse, when to open or wait, when to retry.

``ConnectionPool`` (blocking sockets) and ``AsyncConnectionPool`` (asyncio) are I/O drivers around one
``PoolBook`` each; every decision about connections is taken here, so the two cannot drift:
- idle connections are reused last-in first-out, but only while younger than ``keepalive_expiry`` (kept
  below servers' usual 5 s keep-alive) and only while the connection says it heard nothing since it went
  idle (an EOF or stray bytes both mean "do not reuse"); the others are closed on the way;
- with no idle connection to reuse, a new one is opened while fewer than ``max_connections`` are open,
  else the caller waits for a release and asks again;
- a connection goes back to the idle list only after a response that leaves it reusable
  (``Response.reusable``: complete, keep-alive, nothing beyond it); anything else (a stream closed
  early, an error, a timeout) closes it;
- a failed request is sent again once, on a new connection, only when the connection was a reused one
  and failed before the first response byte, and sending it again cannot run it twice; a caller that
  opted in (``retries``) has any request that failed on the network before a response byte sent again,
  up to that many times (see ``PoolBook.retry``);
- network exceptions become the client's typed errors through ``transport_error``, for both pools.

Nothing here touches a socket or an event loop: the drivers pass in what happened and carry out the
answer (opening, waiting, sending); the bookkeeper only asks a connection whether it is still
``reusable()`` and tells it to ``close()`` when it discards it. The counters shown by ``repr`` are the
pools' own.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from enum import Enum
from typing import Final, Generic, Protocol, TypeVar

from ..errors import ReadTimeout, RemoteProtocolError, ServerDisconnected, TransportError

__all__ = [
    "OPEN",
    "WAIT",
    "PoolBook",
    "PoolStats",
    "Pooled",
    "Slot",
    "replayable",
    "transport_error",
]


class Pooled(Protocol):
    """What the bookkeeper reads and writes on a connection."""

    idle_since: float
    requests: int  # requests sent on it, the current one included

    def reusable(self) -> bool:
        """True when the idle connection heard nothing since it went idle (no EOF, no stray bytes)."""
        ...

    def close(self) -> None:
        """Close the connection (idempotent, quick: no I/O is waited for)."""
        ...


C = TypeVar("C", bound=Pooled)


class Slot(Enum):
    """``PoolBook.acquire``'s answer when there is no idle connection to reuse."""

    OPEN = "open"  # a slot is reserved: open a connection in it, or give it back with ``abandon``
    WAIT = "wait"  # every slot is taken: wait for a release, then ask again


# Module constants for the drivers' per-request checks: reading an Enum member off its class costs a
# descriptor call (about 0.2 us on CPython 3.11), a global is a dictionary lookup.
OPEN: Final = Slot.OPEN
WAIT: Final = Slot.WAIT


class PoolBook(Generic[C]):
    """Idle connections, open slots and counters of one pool; the drivers hold its lock, if any."""

    __slots__ = (
        "clock",
        "closed",
        "discarded",
        "idle",
        "keepalive_expiry",
        "max_connections",
        "open",
        "opened",
        "retried",
        "retries",
        "reused",
    )

    def __init__(
        self, max_connections: int, keepalive_expiry: float, clock: Callable[[], float], retries: int = 0
    ) -> None:
        self.max_connections = max_connections
        self.retries = retries  # the caller's opt-in: its requests may run twice (see ``retry``)
        self.keepalive_expiry = keepalive_expiry
        self.clock = clock
        self.idle: list[C] = []  # most recently released last; the list object is never replaced
        self.open = 0  # connections open or being opened, idle ones included
        self.closed = False
        self.opened = 0
        self.reused = 0
        self.discarded = 0
        self.retried = 0

    def __repr__(self) -> str:
        return f"<PoolBook [{self.counters()}]>"

    def counters(self) -> str:
        """The state shown by the pools' ``repr``."""
        return (
            f"idle {len(self.idle)}, active {self.active}, opened {self.opened}, reused {self.reused}, "
            f"discarded {self.discarded}, retried {self.retried}"
        )

    @property
    def active(self) -> int:
        """Connections checked out right now (or being opened)."""
        return self.open - len(self.idle)

    # -- checkout and release ------------------------------------------------------------------------

    def acquire(self, fresh: bool = False) -> C | Slot:
        """An idle connection to reuse, else ``OPEN`` (a slot reserved) or ``WAIT``.

        ``fresh`` skips the idle connections (a retry wants a new one). Those found expired or not
        reusable are closed and counted as discarded.
        """
        if self.closed:
            raise TransportError("the connection pool is closed")
        idle = self.idle
        if idle and not fresh:
            now = self.clock()
            while idle:
                conn = idle.pop()
                if now - conn.idle_since < self.keepalive_expiry and conn.reusable():
                    self.reused += 1
                    return conn
                self.open -= 1
                self.discarded += 1
                conn.close()
        if self.open < self.max_connections:
            self.open += 1
            return OPEN
        return WAIT

    def connected(self) -> None:
        """A connection was opened in a slot reserved by ``acquire``."""
        self.opened += 1

    def abandon(self) -> None:
        """Opening a connection in a reserved slot failed: the slot is free again."""
        self.open -= 1

    def release(self, conn: C, reusable: bool) -> None:
        """Take a connection back: kept idle when ``reusable`` (and the pool open), else closed."""
        if reusable and not self.closed:
            conn.idle_since = self.clock()
            self.idle.append(conn)
            return
        self.open -= 1
        self.discarded += 1
        conn.close()

    def close(self) -> None:
        """Refuse further checkouts and close the idle connections (active ones close on release)."""
        self.closed = True
        idle = self.idle[:]
        self.idle.clear()
        self.open -= len(idle)
        for conn in idle:
            conn.close()

    # -- failures ------------------------------------------------------------------------------------

    def retry(
        self, conn: C, received: int, exc: BaseException, request: bytes, sent: bool = True, attempt: int = 1
    ) -> bool:
        """Whether a request that failed with ``exc`` on ``conn`` (its ``attempt``-th sending) is sent
        again, on a new connection.

        Only a network failure (not a timeout) of a reused connection before any response byte is
        retried, and only when sending it again cannot run it twice: it was certainly not sent (``sent``
        false: the connection was found dead before the write), or it may be repeated (an idempotent
        method, RFC 9110 9.2.2, or an ``Idempotency-Key`` header). A server that reads a request and then
        closes without answering looks like a close racing the send, and HTTP/1.1 gives the client no way
        to tell them apart, so a POST is not resent. The new connection serves its first request, so it
        is never retried again: a request is sent at most twice.

        A caller that set ``retries`` said its requests may run twice: any network failure before a
        response byte, on any connection, is then retried up to ``retries`` times. Never a timeout,
        which may mean the call is still running.
        """
        if received or not isinstance(exc, OSError) or isinstance(exc, TimeoutError):
            return False
        if attempt > self.retries and (conn.requests <= 1 or (sent and not replayable(request))):
            return False
        self.retried += 1
        return True


_IDEMPOTENT = frozenset([b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"])


def replayable(request: bytes) -> bool:
    """Whether ``request`` (its bytes, head first) may be sent twice: an idempotent method or an
    ``Idempotency-Key`` header."""
    if request[: request.find(b" ")] in _IDEMPOTENT:
        return True
    end = request.find(b"\r\n\r\n")
    return b"\r\nidempotency-key:" in request[: end if end >= 0 else len(request)].lower()


class PoolStats(Generic[C]):
    """The sizes and counters of a pool, read from its bookkeeper (``_book``)."""

    _book: PoolBook[C]

    @property
    def max_connections(self) -> int:
        """The most connections open at once."""
        return self._book.max_connections

    @property
    def keepalive_expiry(self) -> float:
        """Seconds an idle connection may wait for reuse."""
        return self._book.keepalive_expiry

    @property
    def active(self) -> int:
        """Connections checked out right now."""
        return self._book.active

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._book.idle)

    @property
    def opened(self) -> int:
        """Connections opened so far."""
        return self._book.opened

    @property
    def reused(self) -> int:
        """Requests sent on an idle connection."""
        return self._book.reused

    @property
    def discarded(self) -> int:
        """Connections closed instead of kept idle (expired, not reusable, failed, or not to be reused)."""
        return self._book.discarded

    @property
    def retried(self) -> int:
        """Requests sent again on a new connection (see ``PoolBook.retry``)."""
        return self._book.retried


def transport_error(exc: BaseException) -> BaseException:
    """The client's typed error for a network exception; other exceptions are returned as they are."""
    if isinstance(exc, TransportError) or not isinstance(exc, OSError):
        return exc
    if isinstance(exc, TimeoutError):
        return ReadTimeout("timed out waiting for the server's response")
    if isinstance(exc, ssl.SSLError):
        return RemoteProtocolError(f"TLS error: {exc}")
    return ServerDisconnected(f"connection lost: {exc}")
