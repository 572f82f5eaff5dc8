"""The same failure gives the same typed error from both pools (and, for the asyncio pool, on both loops).

Each case is a scripted server (a real socket on 127.0.0.1) misbehaving in one way; the blocking pool, the
asyncio pool on asyncio's loop and the asyncio pool on uvloop each make the request, and the exception
type must be the same for all three.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop

import asgiserve
from asgiserve.client import (
    AsyncConnectionPool,
    ConnectError,
    ConnectionPool,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnected,
    TransportError,
)
from asgiserve.errors import AsgiserveError, HTTPError, TLSError
from tests.client_helpers import Script, read_request

REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
LONG_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a clean FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def close_at_once(index: int, conn: socket.socket) -> None:
    read_request(conn)


def reset_before_response(index: int, conn: socket.socket) -> None:
    read_request(conn)
    reset(conn)


def reset_mid_body(index: int, conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(LONG_HEAD + b"abc")
    time.sleep(0.1)
    reset(conn)


def close_mid_body(index: int, conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(LONG_HEAD + b"abc")


def silent(index: int, conn: socket.socket) -> None:
    read_request(conn)
    time.sleep(1)


def silent_mid_body(index: int, conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(LONG_HEAD + b"abc")
    time.sleep(1)


def bad_status_line(index: int, conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 abc\r\n\r\n")


def bad_chunk_size(index: int, conn: socket.socket) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def plain_http(index: int, conn: socket.socket) -> None:
    conn.recv(65536)  # a TLS ClientHello, answered in plain HTTP
    conn.sendall(OK)


@functools.cache
def server_tls() -> ssl.SSLContext:
    """A server context with a throw-away self-signed certificate for 127.0.0.1."""
    folder = Path(tempfile.mkdtemp(prefix="asgiserve-test-tls-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    args += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    subprocess.run(["openssl", "req", "-x509", *args], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    shutil.rmtree(folder)
    return ctx


def tls_then_garbage(index: int, conn: socket.socket) -> None:
    """A TLS handshake, then bytes that are no TLS record: the client's TLS layer fails mid-read."""
    tls = server_tls().wrap_socket(conn, server_side=True)
    read_request(tls)
    socket.socket.send(tls, b"HTTP/1.1 200 OK\r\n\r\n")  # past the TLS layer, on the raw socket
    time.sleep(0.2)
    tls.close()


def tls_close_mid_body(index: int, conn: socket.socket) -> None:
    """Part of a body over TLS, then a close without TLS's close_notify (a "ragged" EOF)."""
    tls = server_tls().wrap_socket(conn, server_side=True)
    read_request(tls)
    tls.sendall(LONG_HEAD + b"abc")
    time.sleep(0.1)
    tls.close()


def tls_ok(index: int, conn: socket.socket) -> None:
    tls = server_tls().wrap_socket(conn, server_side=True)
    read_request(tls)
    tls.sendall(OK)
    tls.close()


def stale_then_dead(index: int, conn: socket.socket) -> None:
    """Answer once, close on the next request; every later connection closes without answering."""
    read_request(conn)
    if index == 1:
        conn.sendall(OK)
        read_request(conn)


def serve_ok(index: int, conn: socket.socket) -> None:
    while read_request(conn):
        conn.sendall(OK)


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# (case, server, pool options, what the client does, the error expected)
CASES: list[tuple[str, Callable[[int, socket.socket], None] | None, dict[str, object], str, type | None]] = [
    ("connection refused", None, {}, "request", ConnectError),
    ("closed before the response", close_at_once, {}, "request", ServerDisconnected),
    ("reset before the response", reset_before_response, {}, "request", ServerDisconnected),
    ("reset mid-body", reset_mid_body, {}, "request", ServerDisconnected),
    ("closed mid-body", close_mid_body, {}, "request", ServerDisconnected),
    ("read timeout", silent, {"read_timeout": 0.2}, "request", ReadTimeout),
    ("bad status line", bad_status_line, {}, "request", RemoteProtocolError),
    ("bad chunk size", bad_chunk_size, {}, "request", RemoteProtocolError),
    ("TLS to a plain server", plain_http, {"ssl_context": _tls()}, "request", TLSError),
    ("TLS broken mid-read", tls_then_garbage, {"ssl_context": _tls()}, "request", RemoteProtocolError),
    ("TLS closed mid-body", tls_close_mid_body, {"ssl_context": _tls()}, "request", ServerDisconnected),
    ("TLS ok", tls_ok, {"ssl_context": _tls()}, "ok", None),
    ("stream reset mid-body", reset_mid_body, {}, "stream", ServerDisconnected),
    ("stream closed mid-body", close_mid_body, {}, "stream", ServerDisconnected),
    ("stream read timeout", silent_mid_body, {"read_timeout": 0.2}, "stream", ReadTimeout),
    ("stale reused, retry fails", stale_then_dead, {}, "twice", ServerDisconnected),
    ("every connection busy", serve_ok, {"max_connections": 1, "connect_timeout": 0.2}, "busy", PoolTimeout),
    ("pool closed", serve_ok, {}, "closed", TransportError),
]


@pytest.fixture
def port_for() -> Iterator[Callable[[Callable[[int, socket.socket], None] | None], int]]:
    servers: list[Script] = []

    def make(handle: Callable[[int, socket.socket], None] | None) -> int:
        if handle is None:  # a port nothing listens on
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return int(s.getsockname()[1])
        servers.append(Script(handle))
        return servers[-1].port

    yield make
    for s in servers:
        s.close()


def sync_failure(port: int, options: dict[str, object], action: str) -> BaseException | None:
    """What the blocking pool raises for ``action`` (None when it succeeds)."""
    pool = ConnectionPool("127.0.0.1", port, **options)  # type: ignore[arg-type]
    held = None
    try:
        if action == "twice":
            pool.request(REQ)
        elif action == "busy":
            held = pool.stream(REQ)[1]
        elif action == "closed":
            pool.close()
        if action == "stream":
            b"".join(pool.stream(REQ)[1])
        else:
            assert pool.request(REQ)[0].take_body() == b"ok"
    except BaseException as exc:
        return exc
    finally:
        if held is not None:
            held.close()
        pool.close()
    return None


async def async_failure(port: int, options: dict[str, object], action: str) -> BaseException | None:
    """What the asyncio pool raises for ``action`` (None when it succeeds)."""
    pool = AsyncConnectionPool("127.0.0.1", port, **options)  # type: ignore[arg-type]
    held = None
    try:
        if action == "twice":
            await pool.request(REQ)
        elif action == "busy":
            held = (await pool.stream(REQ))[1]
        elif action == "closed":
            await pool.close()
        if action == "stream":
            b"".join([c async for c in (await pool.stream(REQ))[1]])
        else:
            assert (await pool.request(REQ))[0].take_body() == b"ok"
    except BaseException as exc:
        return exc
    finally:
        if held is not None:
            held.close()
        await pool.close()
    return None


@pytest.mark.parametrize(
    ("case", "server", "options", "action", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_same_failure_same_error_from_both_pools(port_for, case, server, options, action, expected):
    if "TLS" in case and not shutil.which("openssl"):
        pytest.skip("no openssl command to make a test certificate")
    errors = {"sync": sync_failure(port_for(server), options, action)}
    errors["asyncio"] = asyncio.run(async_failure(port_for(server), options, action))
    errors["uvloop"] = uvloop.run(async_failure(port_for(server), options, action))
    kinds = {flavour: None if exc is None else type(exc) for flavour, exc in errors.items()}
    assert kinds == dict.fromkeys(errors, expected), errors
    for exc in errors.values():
        if exc is not None:
            assert isinstance(exc, TransportError) and isinstance(exc, AsgiserveError)
            assert exc.__cause__ is None  # no socket-level chain to read through


def test_one_error_root():
    assert issubclass(HTTPError, AsgiserveError) and issubclass(TransportError, AsgiserveError)
    assert issubclass(asgiserve.Unauthorized, AsgiserveError)
    # The transport errors stay OSErrors, and the timeouts TimeoutErrors, as callers catch them today.
    assert issubclass(TransportError, ConnectionError)
    assert issubclass(ReadTimeout, TimeoutError) and issubclass(PoolTimeout, TimeoutError)
    assert not issubclass(HTTPError, OSError)
