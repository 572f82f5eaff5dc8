"""Both connection pools against scripted socket servers and uvicorn: reuse, retry, expiry, limits."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

import asgiserve
from asgiserve.client import (
    AsyncConnectionPool,
    ConnectionPool,
    PoolTimeout,
    ReadTimeout,
    ServerDisconnected,
)
from asgiserve.client.aiopool import AsyncStream
from asgiserve.client.pool import SyncStream
from tests.client_helpers import Script, read_request

REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def arun(coro):
    """``asyncio.run`` that also closes the idle connections of the pools returned, keeping their counters."""
    with asyncio.Runner() as runner:
        result = runner.run(coro)
        for item in result if isinstance(result, tuple) else (result,):
            if isinstance(item, AsyncConnectionPool):
                for conn in item._book.idle:
                    conn.close()
        runner.run(asyncio.sleep(0))
    return result


@pytest.fixture
def script():
    servers: list[Script] = []

    def make(handle):
        s = Script(handle)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def close_on_second_request(index: int, conn: socket.socket) -> None:
    """First connection: answer one request, then close on reading the next (a keep-alive race)."""
    read_request(conn)
    conn.sendall(OK)
    if index == 1:
        read_request(conn)
        return
    while read_request(conn):
        conn.sendall(OK)


def test_stale_reused_connection_is_retried_once(script):
    for mode in ("sync", "async"):
        srv = script(close_on_second_request)
        if mode == "sync":
            pool = ConnectionPool("127.0.0.1", srv.port)
            r1, _ = pool.request(REQ)
            r2, _ = pool.request(REQ)
            r3, _ = pool.request(REQ)
        else:

            async def go(port=srv.port):
                pool = AsyncConnectionPool("127.0.0.1", port)
                out = [(await pool.request(REQ))[0] for _ in range(3)]
                return pool, out

            pool, (r1, r2, r3) = arun(go())
        assert [r.take_body() for r in (r1, r2, r3)] == [b"ok"] * 3
        assert pool.retried == 1 and pool.opened == 2 and srv.accepted == 2, repr(pool)
        assert "retried 1" in repr(pool)
        if mode == "sync":
            pool.close()


def test_no_retry_on_a_fresh_connection_or_after_response_bytes(script):
    def close_at_once(index, conn):
        read_request(conn)

    srv = script(close_at_once)
    pool = ConnectionPool("127.0.0.1", srv.port)
    with pytest.raises(ServerDisconnected, match="without sending a response"):
        pool.request(REQ)
    assert pool.retried == 0 and pool.active == 0

    def partial_on_second(index, conn):
        read_request(conn)
        conn.sendall(OK)
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npar")

    srv = script(partial_on_second)
    pool = ConnectionPool("127.0.0.1", srv.port)
    pool.request(REQ)
    with pytest.raises(ServerDisconnected, match="before the response was complete"):
        pool.request(REQ)
    assert pool.retried == 0 and pool.active == 0 and pool.idle == 0
    pool.close()

    async def go():
        apool = AsyncConnectionPool("127.0.0.1", srv.port)
        await apool.request(REQ)
        with pytest.raises(ServerDisconnected):
            await apool.request(REQ)
        return apool

    apool = arun(go())
    assert apool.retried == 0 and apool.active == 0 and apool.idle == 0


def test_closed_idle_connection_is_noticed_before_reuse(script):
    def answer_then_close(index, conn):
        read_request(conn)
        conn.sendall(OK)

    srv = script(answer_then_close)
    pool = ConnectionPool("127.0.0.1", srv.port)
    pool.request(REQ)
    time.sleep(0.1)  # the server's close reaches us while the connection is idle
    r, _ = pool.request(REQ)
    assert r.take_body() == b"ok"
    assert pool.discarded == 1 and pool.retried == 0 and pool.opened == 2, repr(pool)
    pool.close()

    async def go():
        apool = AsyncConnectionPool("127.0.0.1", srv.port)
        await apool.request(REQ)
        await asyncio.sleep(0.1)
        await apool.request(REQ)
        return apool

    apool = arun(go())
    assert apool.discarded == 1 and apool.retried == 0 and apool.opened == 2, repr(apool)


def test_connection_close_expiry_and_size_limit(script):
    def serve(index, conn):
        while req := read_request(conn):
            if b"close" in req:
                conn.sendall(OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                return
            if b"stream" in req:
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
                time.sleep(0.5)
                conn.sendall(b"0\r\n\r\n")
                continue
            conn.sendall(OK)

    srv = script(serve)
    pool = ConnectionPool("127.0.0.1", srv.port, max_connections=1, keepalive_expiry=0.2, connect_timeout=0.2)
    pool.request(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
    assert pool.idle == 0 and pool.discarded == 1
    pool.request(REQ)
    pool.request(REQ)
    assert pool.opened == 2 and pool.reused == 1
    time.sleep(0.3)  # past keepalive_expiry
    pool.request(REQ)
    assert pool.opened == 3, repr(pool)
    resp, conn = pool.request(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", stream=True)
    stream = SyncStream(pool, conn, resp)
    with pytest.raises(PoolTimeout):
        pool.request(REQ)
    assert b"".join(stream) == b"ab"
    assert pool.active == 0 and pool.idle == 1
    assert "idle 1, active 0" in repr(pool)
    pool.close()

    async def go():
        apool = AsyncConnectionPool("127.0.0.1", srv.port, max_connections=1, connect_timeout=0.2)
        resp, conn = await apool.request(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", stream=True)
        with pytest.raises(PoolTimeout):
            await apool.request(REQ)
        assert b"".join([c async for c in AsyncStream(apool, conn, resp)]) == b"ab"
        await apool.request(REQ)
        return apool

    apool = arun(go())
    assert apool.active == 0 and apool.idle == 1 and apool.reused == 1, repr(apool)


def test_read_timeout(script):
    def silent(index, conn):
        read_request(conn)
        time.sleep(1)

    srv = script(silent)
    pool = ConnectionPool("127.0.0.1", srv.port, read_timeout=0.2)
    with pytest.raises(ReadTimeout):
        pool.request(REQ)
    assert pool.active == 0 and pool.idle == 0
    pool.close()

    async def go():
        apool = AsyncConnectionPool("127.0.0.1", srv.port, read_timeout=0.2)
        with pytest.raises(ReadTimeout):
            await apool.request(REQ)
        return apool

    apool = arun(go())
    assert apool.active == 0 and apool.idle == 0


# -- against uvicorn: the server is not what is tested here, the client's connection handling is ------


def test_500_sequential_sync_calls_reuse_one_connection(run_server):
    server = run_server("uvicorn", "tests.apps.client_svc:counted_app")
    before = int(httpx.get(server.url + "/_conns").text)  # the fixture's readiness probe
    with asgiserve.SyncHTTPClient(server.url) as client:
        for i in range(500):
            assert client.add(a=i, b=1) == i + 1
        assert client.pool.opened == 1 and client.pool.reused >= 500, repr(client.pool)
    # Counted on the server: every request came from the same client connection.
    assert int(httpx.get(server.url + "/_conns").text) == before + 1


def test_call_after_server_keep_alive_timeout_succeeds(run_server):
    server = run_server("uvicorn", "tests.apps.client_svc:counted_app", "--timeout-keep-alive", "1")
    with asgiserve.SyncHTTPClient(server.url) as client:
        assert client.add(a=1) == 1
        time.sleep(1.6)  # the server closed the idle connection; the client's expiry (4 s) has not passed
        assert client.add(a=2) == 2
        assert client.pool.opened == 2 and client.pool.discarded == 1, repr(client.pool)

    async def go():
        async with asgiserve.AsyncHTTPClient(server.url) as client:
            assert await client.add(a=1) == 1
            await asyncio.sleep(1.6)
            assert await client.add(a=2) == 2
            return client.pool

    pool = arun(go())
    assert pool.opened == 2 and pool.discarded == 1, repr(pool)


# -- flow control and slot hand-off (asyncio pool) -------------------------------------------------------


def test_slow_stream_consumer_keeps_the_buffer_bounded(script):
    size = 8 << 20

    def big(index, conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            conn.sendall(block)
        read_request(conn)

    srv = script(big)

    async def go():
        pool = AsyncConnectionPool("127.0.0.1", srv.port, read_timeout=10)
        resp, conn = await pool.request(REQ, stream=True)
        chunks = AsyncStream(pool, conn, resp).__aiter__()
        total = len(await chunks.__anext__())
        peak = 0
        for _ in range(25):  # the consumer is busy elsewhere while the server keeps sending
            await asyncio.sleep(0.02)
            peak = max(peak, sum(map(len, resp.chunks)))
        paused = conn.paused
        async for chunk in chunks:  # reading resumes when the consumer asks again
            total += len(chunk)
        return peak, paused, total, pool

    peak, paused, total, pool = arun(go())
    assert paused and peak <= 2 << 20, peak
    assert total == size and pool.active == 0 and pool.idle == 1, repr(pool)


def test_a_waiter_cancelled_after_being_woken_passes_the_slot_on(script):
    def serve(index, conn):
        while read_request(conn):
            conn.sendall(OK)

    srv = script(serve)

    async def go():
        pool = AsyncConnectionPool("127.0.0.1", srv.port, max_connections=1, connect_timeout=2)
        resp, conn = await pool.request(REQ, stream=True)  # holds the only connection
        for _ in range(200):
            if resp.complete:
                break
            await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(pool.request(REQ)) for _ in range(3)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(pool._waiters) == 3
        AsyncStream(pool, conn, resp).close()  # frees the slot: the first waiter is woken...
        tasks[0].cancel()  # ...and cancelled before it could run
        results = await asyncio.wait_for(asyncio.gather(*tasks[1:], return_exceptions=True), 5)
        await asyncio.gather(tasks[0], return_exceptions=True)
        return pool, tasks[0], results

    pool, first, results = arun(go())
    assert first.cancelled()
    assert [r.take_body() for r, _ in results] == [b"ok", b"ok"], results
    assert pool.opened == 1 and pool.active == 0 and pool.idle == 1, repr(pool)
