"""How an api call runs, on every server: a fresh context per call, a current task, timeouts inside the
call, the deadline, errors raised before and after a suspension, pipelining and clients that leave.

On our own server most calls finish in their first step, without a task of their own (see
``HTTPProtocol.start_call``); these tests hold it to what a task per request gives under uvicorn.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import httpx
import pytest

from tests.conftest import RUNNERS
from tests.rawhttp import connect, parse_responses


@pytest.fixture(scope="module", params=RUNNERS)
def server(request, tmp_path_factory):
    from tests.conftest import start

    target = "tests.apps.calls:Calls"
    if request.param == "uvicorn":
        target = "tests.apps.calls:app"
    s = start(request.param, target, tmp_path_factory.mktemp("calls"))
    yield s
    s.stop()


@pytest.fixture(scope="module", params=["asgiserve", "asgiserve-h11"])
def own_server(request, tmp_path_factory):
    """Our server only: uvicorn starts a pipelined request's task from inside the one before it, so the
    second request inherits the first one's context variables."""
    from tests.conftest import start

    s = start(request.param, "tests.apps.calls:Calls", tmp_path_factory.mktemp("calls"))
    yield s
    s.stop()


def post(path: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


def test_every_call_gets_a_fresh_context_on_one_connection(server):
    with httpx.Client(base_url=server.url) as client:
        for tag, pause in [("a", False), ("b", True), ("c", False), ("d", True)]:
            r = client.post("/context", json={"tag": tag, "pause": pause})
            assert r.json() == {"before": "unset", "after": tag, "in_task": True}


def test_asyncio_timeout_inside_a_call_then_the_connection_serves_on(server):
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/inner_timeout", json={"seconds": 0.02}).text == "inner timeout"
        # No cancellation is left over for the next calls on this connection.
        assert client.post("/sleep", json={"seconds": 0}).json() == 0
        assert client.post("/sleep", json={"seconds": 0.2}).json() == 0.2


def test_deadline_is_a_504_and_the_next_calls_run_whole(server):
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/sleep", json={"seconds": 3})
        assert r.status_code == 504 and "timeout" in r.json()["error"]
        assert client.post("/sleep", json={"seconds": 0.3}).json() == 0.3
        assert client.post("/context", json={"tag": "x"}).json()["before"] == "unset"


def test_anyio_works_inside_a_call(server):
    with httpx.Client(base_url=server.url) as client:
        assert [client.post("/with_anyio", json={"x": x}).json() for x in (1, 21)] == [2, 42]


@pytest.mark.parametrize("now", [True, False])
def test_errors_before_and_after_a_suspension(server, now):
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/refuse", json={"now": now})
        assert r.status_code == 404 and r.json()["error"] == "nothing here"
        r = client.post("/crash", json={"now": now})
        assert r.status_code == 500 and "model fell over" not in r.text
        assert client.post("/sleep", json={"seconds": 0}).status_code == 200


def test_pipelined_calls_are_answered_in_order_each_in_its_own_context(own_server):
    server = own_server
    data = (
        post("/sleep", {"seconds": 0.2})
        + post("/context", {"tag": "p1"})
        + b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n"
        + post("/context_stream", {"tag": "s1"})
        + post("/context", {"tag": "p2", "pause": True})
        + post("/context_stream", {"tag": "s2"})
        + post("/sleep", {"seconds": 0})
    )
    with connect(server.port) as s:
        s.sendall(data)
        raw = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            responses = parse_responses(raw) if raw else []
            if len(responses) == 7 and all(r.complete for r in responses):
                break
            raw += s.recv(65536)
    bodies = [r.body for r in parse_responses(raw)]
    assert json.loads(bodies[0]) == 0.2
    assert json.loads(bodies[1]) == {"before": "unset", "after": "p1", "in_task": True}
    assert bodies[2] == b"ok\n"
    assert bodies[3] == b"unset->s1"
    assert json.loads(bodies[4]) == {"before": "unset", "after": "p2", "in_task": True}
    assert bodies[5] == b"unset->s2"
    assert json.loads(bodies[6]) == 0


def test_a_client_that_leaves_mid_call_does_not_stop_the_server(server):
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(post("/sleep", {"seconds": 0.1}))
        s.close()
    time.sleep(0.2)
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/sleep", json={"seconds": 0.05}).json() == 0.05
        assert client.get("/metrics").status_code == 200


def test_suspended_calls_on_many_connections_run_at_once(server):
    def call(_: int) -> float:
        with httpx.Client(base_url=server.url) as client:
            return float(client.post("/sleep", json={"seconds": 0.2}).json())

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(32)))
    # One after another they would take 6.4 s.
    assert results == [0.2] * 32 and time.monotonic() - t0 < 3


def _read_responses(s: socket.socket, count: int, timeout: float = 5.0) -> tuple[list[bytes], bool]:
    """Bodies of the first ``count`` responses on ``s``, and whether the server then closed it."""
    raw = b""
    deadline = time.monotonic() + timeout
    closed = False
    while time.monotonic() < deadline:
        if raw.count(b"\r\n\r\n") >= count:  # parse_responses wants whole heads
            responses = parse_responses(raw)
            if all(r.complete for r in responses):
                break
        data = s.recv(65536)
        if not data:
            closed = True
            break
        raw += data
    return [r.body for r in parse_responses(raw)], closed


def test_responses_ready_in_one_loop_pass_keep_their_order_on_many_connections(server):
    """Api responses made ready together are written together at the end of the loop pass: each
    connection still gets all of its own, in order, with an ASGI response between them."""

    def pipeline(n: int) -> list[bytes]:
        calls = [post("/context", {"tag": f"{n}-{i}"}) for i in range(12)]
        data = b"".join(calls[:6]) + b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n" + b"".join(calls[6:])
        with connect(server.port) as s:
            s.sendall(data)
            return _read_responses(s, 13)[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(pipeline, range(16)))
    for n, bodies in enumerate(results):
        assert len(bodies) == 13
        assert bodies[6] == b"ok\n"
        tags = [json.loads(b)["after"] for b in bodies[:6] + bodies[7:]]
        assert tags == [f"{n}-{i}" for i in range(12)]


def test_held_responses_go_out_before_a_refusal_and_before_closing(own_server):
    bad = b"GET /livez HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n"
    with connect(own_server.port) as s:
        s.sendall(post("/context", {"tag": "a"}) + post("/context", {"tag": "b"}) + bad)
        bodies, closed = _read_responses(s, 4)  # three come, then the server closes
    assert [json.loads(b)["after"] for b in bodies[:2]] == ["a", "b"]
    assert closed and "error" in json.loads(bodies[2])

    last = post("/context", {"tag": "c"}).replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n")
    with connect(own_server.port) as s:
        s.sendall(post("/context", {"tag": "a"}) + post("/context", {"tag": "b"}) + last)
        bodies, closed = _read_responses(s, 4)  # three come, then the server closes
    assert [json.loads(b)["after"] for b in bodies] == ["a", "b", "c"]
    assert closed


def test_a_burst_of_pipelined_calls_is_answered_whole_and_in_order(own_server):
    """Thousands of calls in a few reads: their held responses are joined once, not copied per call."""
    count = 3000
    data = b"".join(post("/context", {"tag": str(i)}) for i in range(count))
    with connect(own_server.port, timeout=10) as s:
        sender = concurrent.futures.ThreadPoolExecutor(1)
        sent = sender.submit(s.sendall, data)
        bodies, closed = _read_responses(s, count, timeout=20)
        sent.result()
        sender.shutdown()
    assert not closed
    assert [json.loads(b)["after"] for b in bodies] == [str(i) for i in range(count)]
