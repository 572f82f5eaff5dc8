"""A call's read timeout bounds the whole response, not each read: a server trickling its answer a byte at a
time is cut off at the timeout by both pools."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from asgiserve.client import AsyncConnectionPool, ConnectionPool, ReadTimeout
from tests.client_helpers import Script, read_request

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40


def trickle(index: int, conn: socket.socket) -> None:
    """A byte every 0.1 s: each read gets data long before any per-read timeout (the whole takes 8 s)."""
    read_request(conn)
    for i in range(len(RESPONSE)):
        conn.sendall(RESPONSE[i : i + 1])
        time.sleep(0.1)


@pytest.mark.parametrize("pool_kind", ["sync", "async"])
def test_a_trickling_response_is_cut_at_the_timeout(pool_kind):
    srv = Script(trickle)
    t0 = time.monotonic()
    try:
        with pytest.raises(ReadTimeout):
            if pool_kind == "sync":
                pool = ConnectionPool("127.0.0.1", srv.port, read_timeout=1.0)
                try:
                    pool.request(GET)
                finally:
                    pool.close()
            else:

                async def go() -> None:
                    apool = AsyncConnectionPool("127.0.0.1", srv.port, read_timeout=1.0)
                    try:
                        await apool.request(GET)
                    finally:
                        await apool.close()

                asyncio.run(go())
        assert 0.9 < time.monotonic() - t0 < 1.6
    finally:
        srv.close()


def slow_keep_alive(index: int, conn: socket.socket) -> None:
    """Answer each request 0.6 s after it arrived, on a keep-alive connection."""
    while read_request(conn):
        time.sleep(0.6)
        conn.sendall(RESPONSE)


@pytest.mark.parametrize("pool_kind", ["sync", "async"])
def test_the_timeout_bounds_the_whole_call_waiting_for_a_slot_included(pool_kind):
    """One deadline per call: a call that waited 0.6 s for the pool's only connection has 0.4 s left,
    not a fresh timeout for its read (which would let it end, successfully, at 1.2 s)."""
    srv = Script(slow_keep_alive)
    outcomes: list[tuple[str, float]] = []
    t0 = time.monotonic()
    try:
        if pool_kind == "sync":
            import threading

            pool = ConnectionPool("127.0.0.1", srv.port, read_timeout=1.0, max_connections=1)

            def call() -> None:
                try:
                    pool.request(GET)
                    outcomes.append(("ok", time.monotonic() - t0))
                except ReadTimeout:
                    outcomes.append(("timeout", time.monotonic() - t0))

            threads = [threading.Thread(target=call) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            pool.close()
        else:

            async def go() -> None:
                apool = AsyncConnectionPool("127.0.0.1", srv.port, read_timeout=1.0, max_connections=1)

                async def call() -> None:
                    try:
                        await apool.request(GET)
                        outcomes.append(("ok", time.monotonic() - t0))
                    except ReadTimeout:
                        outcomes.append(("timeout", time.monotonic() - t0))

                await asyncio.gather(call(), call())
                await apool.close()

            asyncio.run(go())
        outcomes.sort(key=lambda o: o[1])
        assert [kind for kind, _ in outcomes] == ["ok", "timeout"], outcomes
        assert 0.5 < outcomes[0][1] < 0.95, outcomes
        assert 0.9 < outcomes[1][1] < 1.15, outcomes  # the deadline, not 1.2 s (slot wait + a whole read)
    finally:
        srv.close()
