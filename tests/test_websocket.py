"""WebSockets to mounted apps, on our server (httptools and h11) and on uvicorn, with a real client.

The client is the ``websockets`` library; the app is Starlette mounted in a service. Covers echo of text,
bytes and a 1 MB message, ping, subprotocols, refusal (403) and crash (500) before accepting, closes from
either side with their codes, the token, many sockets at once, malformed handshakes and draining.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.conftest import RUNNERS, start
from tests.rawhttp import connect, read_all


@pytest.fixture(scope="module", params=RUNNERS)
def server(request, tmp_path_factory):
    if request.param == "uvicorn":
        s = start("uvicorn", "tests.apps.ws:app", tmp_path_factory.mktemp("ws"), "--ws", "wsproto")
    else:
        s = start(request.param, "tests.apps.ws:Sockets", tmp_path_factory.mktemp("ws"))
    yield s
    s.stop()


def url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def seen(server) -> list[int]:
    return httpx.post(server.url + "/seen", timeout=5).json()


def test_echo_text_bytes_a_large_message_and_ping(server):
    with ws_connect(url(server, "/ws/echo"), max_size=None) as ws:
        for i in range(50):
            ws.send(f"message {i}")
            assert ws.recv(timeout=5) == f"message {i}"
        ws.send(b"\x00\x01 binary")
        assert ws.recv(timeout=5) == b"\x00\x01 binary"
        big = os.urandom(1 << 20)
        ws.send(big)
        assert ws.recv(timeout=10) == big
        assert ws.ping().wait(5)


def test_subprotocol_is_offered_to_the_app(server):
    with ws_connect(url(server, "/ws/echo"), subprotocols=["other", "chat"]) as ws:
        assert ws.subprotocol == "chat"
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def test_the_app_sees_the_client_close_code(server):
    with ws_connect(url(server, "/ws/echo")) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        ws.close(code=4002)
    deadline = time.monotonic() + 5
    while 4002 not in seen(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen(server)[-1] == 4002


def test_refusal_and_crash_before_accepting_then_the_server_serves_on(server):
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(server, "/ws/refuse"))
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as crashed:
        ws_connect(url(server, "/ws/crash"))
    assert crashed.value.response.status_code == 500
    with pytest.raises(InvalidStatus) as missing:
        ws_connect(url(server, "/nowhere"))
    assert missing.value.response.status_code == 403
    assert httpx.get(server.url + "/livez", timeout=5).status_code == 200


def test_a_close_from_the_app_carries_its_code_and_reason(server):
    with ws_connect(url(server, "/ws/bye")) as ws:
        assert ws.recv(timeout=5) == "bye soon"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")


def test_many_sockets_at_once(server):
    def talk(n: int) -> list[str]:
        with ws_connect(url(server, "/ws/echo")) as ws:
            out = []
            for i in range(20):
                ws.send(f"{n}:{i}")
                out.append(ws.recv(timeout=10))
            return out

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(talk, range(32)))
    assert results == [[f"{n}:{i}" for i in range(20)] for n in range(32)]


@pytest.mark.parametrize("runner", RUNNERS)
def test_websockets_to_mounts_need_the_token(run_server, runner):
    if runner == "uvicorn":
        s = run_server("uvicorn", "tests.apps.ws:token_app", "--ws", "wsproto")
    else:
        s = run_server(runner, "tests.apps.ws:Sockets", "--api-token", "s3cret")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(s, "/ws/echo"))
    assert refused.value.response.status_code == 403
    with ws_connect(url(s, "/ws/echo"), additional_headers={"Authorization": "Bearer s3cret"}) as ws:
        ws.send("with token")
        assert ws.recv(timeout=5) == "with token"


HANDSHAKE = "GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{}\r\n"


@pytest.mark.parametrize(
    "fields, status",
    [
        ("Sec-WebSocket-Version: 13\r\n", b"400"),
        ("Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", b"400"),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n", b"426"),
    ],
)
@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_a_malformed_handshake_is_refused_over_http(run_server, runner, fields, status):
    s = run_server(runner, "tests.apps.ws:Sockets")
    with connect(s.port) as sock:
        sock.sendall(HANDSHAKE.format(fields).encode())
        raw, closed = read_all(sock)
    assert raw.startswith(b"HTTP/1.1 " + status) and closed
    if status == b"426":
        assert b"sec-websocket-version: 13\r\n" in raw
    assert httpx.get(s.url + "/livez", timeout=5).status_code == 200


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_draining_closes_open_sockets_with_going_away(run_server, runner):
    s = run_server(runner, "tests.apps.ws:Sockets")
    with ws_connect(url(s, "/ws/wait")) as ws:
        s.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert s.proc.wait(10) == 0


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_a_message_over_16_mib_closes_the_socket_with_1009(run_server, runner):
    s = run_server(runner, "tests.apps.ws:Sockets")
    with ws_connect(url(s, "/ws/echo"), max_size=None) as ws:
        try:
            ws.send(b"x" * (17 * 1024 * 1024))
        except ConnectionClosed:
            pass  # the server may close while the message is still going out
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert httpx.get(s.url + "/livez", timeout=5).status_code == 200
