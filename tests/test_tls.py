"""HTTPS end to end, over real sockets, with a certificate made at test time: asgiserve's server with both
parsers and uvicorn, given the same ``--ssl-*`` flags, serving the same service; our clients, httpx, curl
and a websocket client against each; keep-alive reuse counted; client certificates with
``--ssl-cert-reqs 2``; plain HTTP sent to the TLS port."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

import asgiserve
from asgiserve.errors import TransportError

from .conftest import RUNNERS, ServerProc, start
from .tls_certs import Certs, make_certs

SERVICE = "tests.apps.tls_svc:TLSSvc"
ASGI_APP = "tests.apps.tls_svc:app"


# Servers started by a test; whatever a failing test left running is killed after it.
LIVE: list[ServerProc] = []


@pytest.fixture(autouse=True)
def _no_leftover_servers() -> Iterator[None]:
    yield
    while LIVE:
        LIVE.pop().stop(signal.SIGKILL)  # a no-op for a server the test stopped itself


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def https_url(server: ServerProc, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}"


def start_https(
    runner: str, tmp: Path, certs: Certs, *extra: str, target: str | None = None, **kw: object
) -> ServerProc:
    """``runner`` serving the TLS service with our certificate, ready over https."""
    if target is None:
        target = ASGI_APP if runner == "uvicorn" else SERVICE
    flags = ["--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key), *extra]
    server = start(runner, target, tmp, *flags, ready=False, **kw)  # type: ignore[arg-type]
    LIVE.append(server)
    wait_https(server, certs.client_context(cert="--ssl-cert-reqs" in extra))
    return server


def wait_https(server: ServerProc, ctx: ssl.SSLContext, timeout: float = 20) -> None:
    """Poll ``/readyz`` over https until 200, failing fast if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(https_url(server) + "/readyz", verify=ctx, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server not ready over https in {timeout}s:\n{server.output()}")


def stop_clean(server: ServerProc) -> None:
    """SIGTERM ends the server cleanly (uvicorn exits by re-raising the signal, asgiserve with 0)."""
    code = server.stop()
    assert code == (-signal.SIGTERM if server.proc.args[2] == "uvicorn" else 0), server.output()  # type: ignore[index]
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture(scope="module", params=RUNNERS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[ServerProc]:
    """The TLS service on each runner, shared by the tests of this module that only talk to it."""
    server = start_https(request.param, tmp_path_factory.mktemp("served"), certs)
    LIVE.remove(server)  # it outlives each test; stopped below
    yield server
    stop_clean(server)


def test_sync_client_over_https_reuses_one_connection(served: ServerProc, certs: Certs) -> None:
    with asgiserve.SyncHTTPClient(https_url(served), verify=str(certs.ca), server_ready_timeout=5) as client:
        for i in range(20):
            assert client.echo(text=f"hi {i}") == f"hi {i}"
            assert client.add(a=i, b=1) == i + 1
        assert "".join(client.count(n=50)) == "".join(f"{i};" for i in range(50))  # text: any chunking
        assert list(client.numbers(n=5)) == [{"i": i} for i in range(5)]
        big = "x" * (2 * 1024 * 1024)  # many TLS records each way, and read pauses on the server
        assert client.echo(text=big) == big
        # readyz + schema.json + 40 calls + 2 streams + 1 big call, all on the first connection.
        assert "opened 1, reused 44, discarded 0, retried 0" in repr(client.pool), repr(client.pool)


def test_async_client_over_https_reuses_one_connection(served: ServerProc, certs: Certs) -> None:
    async def main() -> str:
        async with asgiserve.AsyncHTTPClient(https_url(served), verify=certs.ca, server_ready_timeout=5) as client:
            for i in range(20):
                assert await client.echo(text=f"hi {i}") == f"hi {i}"
            results = await asyncio.gather(*(client.add(a=i) for i in range(8)))
            assert results == list(range(8))
            assert "".join([c async for c in client.count(n=50)]) == "".join(f"{i};" for i in range(50))
            assert [c async for c in client.numbers(n=5)] == [{"i": i} for i in range(5)]
            return repr(client.pool)

    pool = asyncio.run(main())
    # Eight concurrent calls need up to eight connections; the rest reuse them.
    opened = int(re.search(r"opened (\d+)", pool).group(1))  # type: ignore[union-attr]
    reused = int(re.search(r"reused (\d+)", pool).group(1))  # type: ignore[union-attr]
    assert 1 <= opened <= 8 and opened + reused == 2 + 20 + 8 + 2, pool
    assert "discarded 0, retried 0" in pool, pool


def test_async_client_close_ends_its_tls_connections(served: ServerProc, certs: Certs) -> None:
    async def main() -> None:
        async with asgiserve.AsyncHTTPClient(https_url(served), verify=certs.ca) as client:
            assert await asyncio.gather(*(client.add(a=i) for i in range(4))) == list(range(4))

    # A TLS close is a close_notify exchange: the loop that asyncio.run ends right after close() must not
    # cut it off and leave the sockets to the garbage collector ("unclosed transport").
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


def test_httpx_over_https_keep_alive_and_scope(served: ServerProc, certs: Certs) -> None:
    with httpx.Client(base_url=https_url(served), verify=certs.client_context()) as client:
        seen = [client.get("/info/").json() for _ in range(5)]
        assert {s["scheme"] for s in seen} == {"https"}
        assert len({tuple(s["client"]) for s in seen}) == 1, seen  # one connection, kept alive
        with client.stream("POST", "/count", json={"n": 200}) as r:
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"
            assert "".join(r.iter_text()) == "".join(f"{i};" for i in range(200))
        assert client.post("/echo", json={"text": "é"}).text == "é"
        assert client.post("/add", json={"a": "x"}).status_code == 400
    # By name too: the certificate is for localhost as well as 127.0.0.1.
    assert httpx.get(https_url(served, "localhost") + "/readyz", verify=certs.client_context()).text == "ok\n"


def test_curl_over_https_reuses_the_connection(served: ServerProc, certs: Certs) -> None:
    url = https_url(served)
    out = subprocess.run(
        ["curl", "-sS", "-v", "--cacert", str(certs.ca), f"{url}/readyz", f"{url}/info/",
         "-H", "content-type: application/json", "-X", "GET"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok\n"), out.stdout
    assert json.loads(out.stdout[3:])["scheme"] == "https"
    assert re.search(r"Re-using existing .*connection", out.stderr), out.stderr
    assert "ALPN: server accepted http/1.1" in out.stderr or served.proc.args[2] == "uvicorn", out.stderr
    streamed = subprocess.run(
        ["curl", "-sS", "--cacert", str(certs.ca), f"{url}/count", "-H", "content-type: application/json",
         "-d", '{"n": 100}'],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert streamed.stdout == "".join(f"{i};" for i in range(100)), streamed.stderr
    # Without our CA, curl refuses the server (its system trust store does not know it).
    untrusted = subprocess.run(["curl", "-sS", f"{url}/readyz"], capture_output=True, text=True, timeout=20)
    assert untrusted.returncode == 60, untrusted.stderr  # CURLE_PEER_FAILED_VERIFICATION


def test_websocket_over_tls(served: ServerProc, certs: Certs) -> None:
    uri = f"wss://127.0.0.1:{served.port}/info/"
    with ws_connect(uri, ssl=certs.client_context(), proxy=None, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["scheme"] == "wss" and first["type"] == "websocket"
        for word in ("one", "two", "x" * 100_000):
            ws.send(word)
            assert ws.recv(timeout=10) == "echo:" + word


def test_pipelined_requests_over_tls(served: ServerProc, certs: Certs) -> None:
    body = b'{"text": "piped"}'
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    burst = (post % (len(body), body)) * 3 + b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ctx = certs.client_context()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(burst)  # one TLS write: four requests, answered in order on one connection
            got = b""
            while chunk := tls.recv(65536):
                got += chunk
    assert got.count(b"HTTP/1.1 200") == 4, got
    assert got.count(b"piped") == 3 and got.rstrip().endswith(b"ok"), got


def test_plain_http_to_the_tls_port_is_closed(served: ServerProc, certs: Certs) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = b""
            start_t = time.monotonic()
            try:
                while chunk := sock.recv(4096):
                    got += chunk
            except ConnectionResetError:
                pass
            assert time.monotonic() - start_t < 4, "the server held a plain-HTTP connection open"
            assert b"HTTP/" not in got and b"ok" not in got, got  # at most a TLS alert, then the end
    # Still serving https, and nothing alarming in its log.
    with asgiserve.SyncHTTPClient(https_url(served), verify=str(certs.ca), server_ready_timeout=5) as client:
        assert client.echo(text="still here") == "still here"
    assert "Traceback" not in served.output() and "ERROR" not in served.output(), served.output()


def _raw_https_get(port: int, ctx: ssl.SSLContext) -> bytes:
    """One GET /readyz over a fresh TLS connection: the response bytes, or what went wrong."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                got = b""
                while chunk := tls.recv(4096):
                    got += chunk
                return got
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            return f"refused: {exc}".encode()


@pytest.mark.parametrize("runner", RUNNERS)
def test_client_certificate_required(runner: str, tmp_path: Path, certs: Certs) -> None:
    server = start_https(runner, tmp_path, certs, "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(certs.ca))
    try:
        good = certs.client_context(cert=True)
        assert _raw_https_get(server.port, good).startswith(b"HTTP/1.1 200"), "a trusted client was refused"
        for ctx in (certs.client_context(rogue=True), certs.client_context()):  # wrong CA, no certificate
            got = _raw_https_get(server.port, ctx)
            assert got.startswith(b"refused:") or got == b"", got
        # Our clients: refused with a certificate of another CA (the server closes: no hang), served with
        # a trusted one.
        with pytest.raises(TransportError):
            asgiserve.SyncHTTPClient(
                https_url(server), verify=certs.client_context(rogue=True), timeout=5, server_ready_timeout=0
            )
        with pytest.raises(asgiserve.ServiceUnavailable, match="ServerDisconnected"):
            asgiserve.SyncHTTPClient(https_url(server), verify=certs.client_context(), server_ready_timeout=0.3)
        with asgiserve.SyncHTTPClient(https_url(server), verify=good, server_ready_timeout=5) as client:
            assert client.echo(text="mtls") == "mtls"
            assert "opened 1," in repr(client.pool)
        assert _raw_https_get(server.port, good).startswith(b"HTTP/1.1 200"), "not serving after refusals"
    finally:
        stop_clean(server)
