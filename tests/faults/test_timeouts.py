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
