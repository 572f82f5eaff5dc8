"""The pools' sans-IO bookkeeper on its own: reuse, expiry, limits, release, retry decisions, error mapping.

No sockets: connections are plain objects and time is a number the test moves, so every rule is checked
exactly, through the counters the pools show in their ``repr``.
"""

from __future__ import annotations

import ssl

import pytest

from asgiserve.client import ReadTimeout, RemoteProtocolError, ServerDisconnected, TransportError
from asgiserve.client.bookkeeper import OPEN, WAIT, PoolBook, transport_error


class Conn:
    """A connection as the bookkeeper sees it."""

    def __init__(self, name: str, requests: int = 1) -> None:
        self.name = name
        self.requests = requests
        self.idle_since = 0.0
        self.heard = False  # EOF or stray bytes while idle
        self.closed = False

    def reusable(self) -> bool:
        return not self.heard

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return self.name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def book(max_connections: int = 2, expiry: float = 4.0) -> tuple[PoolBook[Conn], Clock]:
    clock = Clock()
    return PoolBook(max_connections, expiry, clock), clock


def opened(b: PoolBook[Conn], name: str) -> Conn:
    assert b.acquire() is OPEN
    b.connected()
    return Conn(name)


def test_reuse_is_last_in_first_out():
    b, _ = book()
    c1, c2 = opened(b, "c1"), opened(b, "c2")
    assert repr(b) == "<PoolBook [idle 0, active 2, opened 2, reused 0, discarded 0, retried 0]>"
    b.release(c1, True)
    b.release(c2, True)
    assert not (c1.closed or c2.closed)
    assert repr(b) == "<PoolBook [idle 2, active 0, opened 2, reused 0, discarded 0, retried 0]>"
    assert b.acquire() is c2 and b.acquire() is c1
    assert repr(b) == "<PoolBook [idle 0, active 2, opened 2, reused 2, discarded 0, retried 0]>"


def test_expired_and_unusable_idle_connections_are_closed_on_the_way():
    b, clock = book(max_connections=3)
    old, heard, young = opened(b, "old"), opened(b, "heard"), opened(b, "young")
    b.release(old, True)
    clock.now += 3.5
    b.release(heard, True)
    b.release(young, True)
    heard.heard = True
    clock.now += 1.0  # old is 4.5 s idle, past the 4 s expiry; young is 1 s idle
    assert b.acquire() is young
    assert not (heard.closed or old.closed or young.closed)
    assert b.acquire() is OPEN  # heard and old are dropped on the way: a new one opens
    assert heard.closed and old.closed and not young.closed
    assert repr(b) == "<PoolBook [idle 0, active 2, opened 3, reused 1, discarded 2, retried 0]>"


def test_limit_wait_release_and_abandon():
    b, _ = book(max_connections=1)
    c1 = opened(b, "c1")
    assert b.acquire() is WAIT  # the only slot is taken
    b.release(c1, False)  # not reusable: closed, and the slot is free
    assert c1.closed
    assert b.acquire() is OPEN
    b.abandon()  # the connect failed
    assert b.acquire() is OPEN
    assert repr(b) == "<PoolBook [idle 0, active 1, opened 1, reused 0, discarded 1, retried 0]>"


def test_fresh_skips_idle_connections():
    b, _ = book(max_connections=2)
    c1 = opened(b, "c1")
    b.release(c1, True)
    assert b.acquire(fresh=True) is OPEN
    assert b.acquire(fresh=True) is WAIT  # the idle one holds the other slot
    assert b.acquire() is c1


def test_closed_book_refuses_checkouts_and_keeps_nothing():
    b, _ = book()
    c1, c2 = opened(b, "c1"), opened(b, "c2")
    b.release(c1, True)
    b.close()
    assert c1.closed and not c2.closed
    b.release(c2, True)  # released after the close: closed, not kept
    assert c2.closed
    with pytest.raises(TransportError, match="closed"):
        b.acquire()
    assert repr(b) == "<PoolBook [idle 0, active 0, opened 2, reused 0, discarded 1, retried 0]>"


@pytest.mark.parametrize(
    ("requests", "received", "exc", "retried"),
    [
        (2, 0, ServerDisconnected("closed"), True),  # a reused connection closed before any byte
        (2, 0, ConnectionResetError(104, "reset"), True),  # the same, seen as a socket error
        (2, 0, BrokenPipeError(32, "broken pipe"), True),  # the send itself failed
        (1, 0, ServerDisconnected("closed"), False),  # a new connection: the server really refused it
        (2, 5, ServerDisconnected("closed"), False),  # response bytes arrived: the app may have run
        (2, 0, ReadTimeout("slow"), False),  # a timeout is never retried
        (2, 0, TimeoutError(), False),
        (2, 0, KeyboardInterrupt(), False),  # not a network failure
        (2, 0, ValueError("bad"), False),
    ],
)
def test_retry_only_a_reused_connection_that_failed_before_any_byte(requests, received, exc, retried):
    b, _ = book()
    assert b.retry(Conn("c", requests), received, exc, GET) is retried
    assert b.retried == int(retried)
    assert repr(b).endswith(f"retried {int(retried)}]>")


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
POST = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(
    ("request_bytes", "sent", "retried"),
    [
        (GET, True, True),
        (b"PUT /x HTTP/1.1\r\nHost: t\r\n\r\n", True, True),
        (b"DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n", True, True),
        (POST, True, False),  # it may have reached the app: sending it again could run it twice
        (POST, False, True),  # found dead before the write: certainly not sent
        (POST.replace(b"Host: t", b"Host: t\r\nIdempotency-Key: k1"), True, True),
        (POST.replace(b"Host: t", b"Host: t\r\nidempotency-key: k1"), True, True),
        (POST.replace(b"{}", b"idempotency-key: in the body"), True, False),  # only the head counts
    ],
)
def test_retry_resends_only_what_cannot_run_twice(request_bytes, sent, retried):
    b, _ = book()
    assert b.retry(Conn("c", 2), 0, ServerDisconnected("closed"), request_bytes, sent) is retried
    assert b.retried == int(retried)


def test_network_exceptions_become_typed_errors():
    assert isinstance(transport_error(TimeoutError()), ReadTimeout)
    assert isinstance(transport_error(ssl.SSLError(1, "bad record")), RemoteProtocolError)
    reset = transport_error(ConnectionResetError(104, "Connection reset by peer"))
    assert isinstance(reset, ServerDisconnected) and "Connection reset by peer" in str(reset)
    typed = ServerDisconnected("closed")
    assert transport_error(typed) is typed
    other = ValueError("x")
    assert transport_error(other) is other
