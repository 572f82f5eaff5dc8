"""A request is never sent twice when it may have run: both pools against a server that reads a request,
then closes without answering (as a worker killed mid-call does)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from asgiserve.client import AsyncConnectionPool, ConnectionPool, ServerDisconnected
from tests.client_helpers import Script, read_request

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
POST = b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
KEYED = b"POST /run HTTP/1.1\r\nHost: t\r\nIdempotency-Key: job-1\r\nContent-Length: 2\r\n\r\n{}"
GET = b"GET /run HTTP/1.1\r\nHost: t\r\n\r\n"


class DiesOnSecond:
    """Answers the first request of each connection, then reads the next one and closes unanswered."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.script = Script(self.handle)

    def handle(self, index: int, conn: socket.socket) -> None:
        for answer in (True, False):
            head = read_request(conn)
            if not head:
                return
            self.seen.append(head.split(b" ", 1)[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while head.startswith(b"POST") and len(body) < 2:
                body += conn.recv(2 - len(body))
            if not answer:
                return  # read, maybe acted on, never answered
            conn.sendall(OK)


def calls(pool_kind: str, port: int, second: bytes, retries: int = 0) -> tuple[bytes, BaseException | None]:
    """The first call's body and what the second call raised (None if it succeeded)."""
    if pool_kind == "sync":
        pool = ConnectionPool("127.0.0.1", port, retries=retries)
        try:
            first = pool.request(POST)[0].take_body()
            try:
                pool.request(second)
            except ServerDisconnected as exc:
                return first, exc
            return first, None
        finally:
            pool.close()

    async def go() -> tuple[bytes, BaseException | None]:
        pool = AsyncConnectionPool("127.0.0.1", port, retries=retries)
        try:
            first = (await pool.request(POST))[0].take_body()
            try:
                await pool.request(second)
            except ServerDisconnected as exc:
                return first, exc
            return first, None
        finally:
            await pool.close()

    return asyncio.run(go())


@pytest.mark.parametrize("pool_kind", ["sync", "async"])
def test_a_post_that_may_have_run_is_not_sent_again(pool_kind):
    srv = DiesOnSecond()
    try:
        first, error = calls(pool_kind, srv.script.port, POST)
        assert first == b"ok"
        assert isinstance(error, ServerDisconnected)  # the caller learns it failed...
        assert srv.seen == [b"POST", b"POST"] and srv.script.accepted == 1  # ...and it ran at most once
    finally:
        srv.script.close()


@pytest.mark.parametrize("pool_kind", ["sync", "async"])
@pytest.mark.parametrize("second", [GET, KEYED], ids=["idempotent-method", "idempotency-key"])
def test_a_request_that_may_be_repeated_is_retried_once(pool_kind, second):
    srv = DiesOnSecond()
    try:
        first, error = calls(pool_kind, srv.script.port, second)
        assert first == b"ok" and error is None
        assert srv.seen == [b"POST", second.split(b" ", 1)[0], second.split(b" ", 1)[0]]
        assert srv.script.accepted == 2
    finally:
        srv.script.close()


@pytest.mark.parametrize("pool_kind", ["sync", "async"])
def test_a_caller_that_opted_in_has_a_post_retried(pool_kind):
    srv = DiesOnSecond()
    try:
        # retries=2: the POST fails on the reused connection, then on the second request of a new one
        # never (a new connection answers its first), so it is sent twice and answered.
        first, error = calls(pool_kind, srv.script.port, POST, retries=2)
        assert first == b"ok" and error is None
        assert srv.seen == [b"POST", b"POST", b"POST"] and srv.script.accepted == 2
    finally:
        srv.script.close()


def test_the_clients_take_retries_and_pass_an_idempotency_key_through(tmp_path):
    """``retries=`` reaches the pools; an ``Idempotency-Key`` given to ``request`` is sent as it is."""
    from asgiserve import AsyncHTTPClient, SyncHTTPClient
    from tests.conftest import start

    server = start("asgiserve", "tests.faults.apps:Slow", tmp_path, "--workers", "1")
    try:
        with SyncHTTPClient(server.url, retries=3) as client:
            assert client.pool._book.retries == 3
            r = client.request("GET", "/livez", headers={"Idempotency-Key": "k-1"})
            assert r.status == 200

        async def go() -> None:
            async with AsyncHTTPClient(server.url, retries=2) as aclient:
                assert aclient.pool._book.retries == 2

        asyncio.run(go())
    finally:
        server.stop()
