"""Edge cases of the api path over real HTTP: stream timeouts, iterator returns, limits, draining."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

import asgiserve
from tests.apps.edges import Edges
from tests.conftest import RUNNERS


@pytest.fixture(params=RUNNERS)
def edges(request, run_server):
    runner = request.param
    if runner == "uvicorn":
        return run_server(runner, "tests.apps.edges:app")
    return run_server(runner, "tests.apps.edges:Edges", env={"ASGISERVE_MAX_BODY_SIZE": "1000"})


def test_sync_stream_timeout_before_first_item_is_a_504_in_time(edges):
    t0 = time.monotonic()
    r = httpx.post(edges.url + "/slow_first", json={"delay": 3}, timeout=10)
    assert r.status_code == 504 and "timeout" in r.json()["error"]
    assert time.monotonic() - t0 < 2.5  # answered at the deadline, not when the thread finished
    # The server still serves, and the slot comes back once the thread ends.
    assert httpx.post(edges.url + "/size", json={"data": "abc"}).json() == 3


def test_first_item_that_cannot_be_encoded_is_an_ordinary_error(edges):
    r = httpx.post(edges.url + "/unencodable")
    assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}


def test_functions_returning_iterators_stream(edges):
    r = httpx.post(edges.url + "/letters")
    assert r.status_code == 200 and r.text == "abc" and r.headers.get("transfer-encoding") == "chunked"
    assert httpx.post(edges.url + "/aletters").text == "xyz"
    schema = httpx.get(edges.url + "/schema.json").json()
    routes = {r["name"]: r for r in schema["routes"]}
    assert routes["letters"]["output"]["is_stream"] and routes["aletters"]["output"]["is_stream"]


def test_sse_splits_any_line_break(edges):
    r = httpx.post(edges.url + "/sse_text")
    assert r.text == "data: line1\ndata: line2\n\n"


def test_optional_path_output_sends_the_file_not_its_name(edges):
    r = httpx.post(edges.url + "/maybe_file", json={"give": True})
    assert r.status_code == 200 and b"exercising edge cases" in r.content
    assert "edges.py" in r.headers["content-disposition"]
    assert httpx.post(edges.url + "/maybe_file", json={"give": False}).json() is None


def test_body_over_the_limit_is_413(edges):
    r = httpx.post(edges.url + "/size", json={"data": "x" * 2000})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert httpx.post(edges.url + "/size", json={"data": "x" * 500}).json() == 500


def test_swallowed_timeout_does_not_leak():
    app = asgiserve.to_asgi(Edges)
    sent: list[dict] = []

    async def main() -> None:
        await app.startup()

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/swallow", "headers": []}
        await asyncio.get_running_loop().create_task(app(scope, receive, send))
        await app.shutdown()

    asyncio.run(main())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"swallowed"
    assert not app.gate.deadlines.expired and not app.gate.deadlines.pending and app.gate.in_flight == 0


def test_draining_answers_503_to_apis_but_keeps_probes():
    app = asgiserve.to_asgi(Edges)
    statuses: dict[str, int] = {}

    async def main() -> None:
        await app.startup()
        app.start_draining()

        async def receive() -> dict:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        for path, method in (("/size", "POST"), ("/livez", "GET"), ("/readyz", "GET")):

            async def send(message: dict, path: str = path) -> None:
                if message["type"] == "http.response.start":
                    statuses[path] = message["status"]

            scope = {"type": "http", "method": method, "path": path, "headers": []}
            await app(scope, receive, send)

    asyncio.run(main())
    assert statuses == {"/size": 503, "/livez": 200, "/readyz": 503}


def _ws_handshake(port: int, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (
        "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.encode())
        return s.recv(4096)


def test_websocket_to_a_mount_needs_the_token(run_server):
    server = run_server("uvicorn", "tests.apps.edges:token_app", "--ws", "wsproto")
    assert _ws_handshake(server.port, None).startswith(b"HTTP/1.1 403")
    assert _ws_handshake(server.port, "s3cret").startswith(b"HTTP/1.1 101")


def test_multipart_boundary_keeps_its_case(edges):
    # Browsers send mixed-case boundaries (----WebKitFormBoundary...): they are case-sensitive.
    boundary = "----WebKitFormBoundaryAbCdEf"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="f.txt"\r\n\r\n'
        f"hello\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"content-type": f"multipart/form-data; Boundary={boundary}"}
    r = httpx.post(edges.url + "/upload", content=body, headers=headers)
    assert r.status_code == 200 and r.json() == 5


def test_stream_apis_check_the_content_type_too(edges):
    r = httpx.post(edges.url + "/letters", content=b"{}", headers={"content-type": "application/xml"})
    assert r.status_code == 415 and "application/xml" in r.json()["error"]
