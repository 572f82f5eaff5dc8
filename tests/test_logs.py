"""Logs: the access line field by field (text and JSON), request ids in and out, worker start and drain lines."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from tests.conftest import start
from tests.rawhttp import parse_responses, read_all

LINE = re.compile(
    r'^INFO: 127\.0\.0\.1:(?P<port>\d+) - "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/(?P<version>1\.[01])" '
    r"(?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d\d)ms id=(?P<id>\S+)$"
)
GENERATED = re.compile(r"^[0-9a-f]{20}$")


def lines_matching(server, needle: str, count: int = 1, timeout: float = 5.0) -> list[str]:
    """The log lines containing ``needle``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in server.output().splitlines() if needle in line]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def send(port: int, data: bytes) -> tuple[int, list]:
    """Send raw bytes on a fresh connection; the client's own port and the responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        own = s.getsockname()[1]
        s.sendall(data)
        raw, _ = read_all(s, timeout=1.0)
    return own, parse_responses(raw)


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_access_line_field_by_field(tmp_path, runner):
    server = start(runner, "summarizer:Summarization", tmp_path)
    try:
        body = b'{"text": "One. Two. Three."}'
        own, [r] = send(
            server.port,
            b"POST /summarize?x=1 HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: req-42\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        assert r.status == 200 and r.headers["x-request-id"] == "req-42"
        [line] = lines_matching(server, "id=req-42")
        m = LINE.match(line)
        assert m, line
        assert int(m["port"]) == own
        assert (m["method"], m["target"], m["version"], m["status"]) == (
            "POST",
            "/summarize?x=1",
            "1.1",
            "200",
        )
        assert int(m["bytes"]) == len(r.body) > 0
        assert 0 < float(m["ms"]) < 5000

        # ASGI path (a stream): the id is generated, echoed, and the bytes are the whole streamed body.
        streamed = httpx.post(server.url + "/stream_summary", json={"text": "One. Two. Three."})
        rid = streamed.headers["x-request-id"]
        assert GENERATED.match(rid), rid
        [line] = lines_matching(server, f"id={rid}")
        m = LINE.match(line)
        assert m and m["target"] == "/stream_summary" and m["status"] == "200", line
        assert int(m["bytes"]) == len(streamed.content) > 0

        # HTTP/1.0 and a 404 through ASGI.
        own, [r] = send(server.port, b"GET /nope HTTP/1.0\r\nX-Request-ID: abc\r\n\r\n")
        assert r.status == 404 and r.headers["x-request-id"] == "abc"
        [line] = lines_matching(server, "id=abc")
        m = LINE.match(line)
        assert m and (m["method"], m["version"], m["status"]) == ("GET", "1.0", "404"), line
        assert int(m["bytes"]) == len(r.body) and int(m["port"]) == own
    finally:
        assert server.stop() == 0


def test_a_path_outside_ascii_is_logged_as_its_characters_in_order(tmp_path):
    # Lines are written as bytes in the stream's encoding: a printable path shows as itself, and lines
    # keep the order of their requests, after the server's own start-up lines.
    server = start("asgiserve", "summarizer:Summarization", tmp_path)
    try:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/caf%C3%A9", headers={"x-request-id": "first"}).status_code == 404
            assert client.post("/summarize", json={"text": "A."}, headers={"x-request-id": "second"}).is_success
        [first] = lines_matching(server, "id=first")
        [second] = lines_matching(server, "id=second")
        assert '"GET /café HTTP/1.1" 404 ' in first, first
        lines = server.output().splitlines()
        started = next(i for i, line in enumerate(lines) if "serving" in line.lower())
        assert started < lines.index(first) < lines.index(second)
    finally:
        assert server.stop() == 0


def test_generated_ids_are_unique_and_bad_ones_replaced(tmp_path):
    server = start("asgiserve", "summarizer:Summarization", tmp_path)
    try:
        with httpx.Client(base_url=server.url) as client:
            ids = {client.get("/livez").headers["x-request-id"] for _ in range(20)}
            ids |= {client.post("/summarize", json={"text": "A."}).headers["x-request-id"] for _ in range(20)}
            assert len(ids) == 40 and all(GENERATED.match(i) for i in ids)
            for bad in ("x" * 129, "has space", "tab\there", "é"):
                r = client.get("/livez", headers={"x-request-id": bad.encode("latin-1")})
                assert GENERATED.match(r.headers["x-request-id"]), (bad, r.headers)
                # A direct api call takes its id from the server's own pass over the head.
                r = client.post("/summarize", json={"text": "A."}, headers={"x-request-id": bad.encode("latin-1")})
                assert r.is_success and GENERATED.match(r.headers["x-request-id"]), (bad, r.headers)
            for path in ("/livez", "/summarize"):
                r = client.request("GET" if path == "/livez" else "POST", path, json={"text": "A."}, headers={"x-request-id": "y" * 128})
                assert r.headers["x-request-id"] == "y" * 128
    finally:
        assert server.stop() == 0


def test_pipelined_ids_stay_with_their_requests(tmp_path):
    server = start("asgiserve", "summarizer:Summarization", tmp_path)
    try:
        body = b'{"text": "A. B."}'
        one = (
            b"POST /summarize HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Request-ID: p%d\r\n"
        )
        data = b"".join(one % i + b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for i in range(3))
        data += b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Request-ID: p3\r\n\r\n"
        _, responses = send(server.port, data)
        assert [r.headers["x-request-id"] for r in responses] == ["p0", "p1", "p2", "p3"]
        logged = lines_matching(server, "id=p", count=4)
        assert [LINE.match(line)["id"] for line in logged] == ["p0", "p1", "p2", "p3"]
    finally:
        assert server.stop() == 0


def test_json_log_format(tmp_path):
    server = start("asgiserve", "summarizer:Summarization", tmp_path, "--log-format", "json")
    try:
        own, [r] = send(
            server.port,
            b"GET /livez?q=%01 HTTP/1.1\r\nHost: t\r\nX-Request-ID: j-1\r\nConnection: close\r\n\r\n",
        )
        assert r.status == 200
        # A path with control characters stays on one line, escaped by JSON.
        send(server.port, b"GET /x%0a%1b[31mINFO:%20forged HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        [raw] = lines_matching(server, '"j-1"')
        lines_matching(server, "forged")
    finally:
        assert server.stop() == 0
    records = [json.loads(line) for line in server.output().splitlines()]  # every line is one JSON object
    access = json.loads(raw)
    assert access == {
        "time": access["time"],
        "level": "info",
        "logger": "asgiserve.access",
        "client": f"127.0.0.1:{own}",
        "method": "GET",
        "path": "/livez",
        "query": "q=%01",
        "http_version": "1.1",
        "status": 200,
        "bytes": 3,
        "duration_ms": access["duration_ms"],
        "request_id": "j-1",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["time"])
    assert isinstance(access["duration_ms"], float) and 0 <= access["duration_ms"] < 5000
    [forged] = [rec for rec in records if rec.get("path", "").startswith("/x")]
    assert forged["path"] == "/x\n\x1b[31mINFO: forged" and forged["status"] == 404
    starts = [rec for rec in records if "serving Summarization" in rec.get("message", "")]
    assert len(starts) == 1 and starts[0]["level"] == "info" and starts[0]["logger"] == "asgiserve"


def test_no_access_log_no_id(tmp_path):
    server = start("asgiserve", "summarizer:Summarization", tmp_path, "--no-access-log")
    try:
        r = httpx.post(server.url + "/summarize", json={"text": "A."}, headers={"x-request-id": "q"})
        assert r.status_code == 200 and "x-request-id" not in r.headers
        assert "x-request-id" not in httpx.get(server.url + "/livez").headers
    finally:
        assert server.stop() == 0
    assert "POST /summarize" not in server.output() and "GET /livez" not in server.output()


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_start_lines(tmp_path, workers):
    server = start(
        "asgiserve", "tests.apps.mount_seed_fastapi:MyService", tmp_path, "--workers", str(workers)
    )
    try:
        found = lines_matching(server, "serving MyService", count=workers)
    finally:
        assert server.stop() == 0
    pids = set()
    for line in found:
        m = re.match(
            rf"INFO: Worker (\d+) serving MyService on http://127\.0\.0\.1:{server.port}; apis (.*); mounts (.*)$",
            line,
        )
        assert m, line
        pids.add(int(m[1]))
        assert m[3] == "/v1", line
    assert len(pids) == workers
    if workers == 1:
        assert pids == {server.proc.pid}
    else:
        assert server.proc.pid not in pids


def test_shutdown_says_how_many_requests_drained(tmp_path):
    server = start("asgiserve", "tests.apps.traffic:Unlimited", tmp_path)
    results: list[httpx.Response] = []

    def slow() -> None:
        results.append(httpx.post(server.url + "/sleep", json={"seconds": 1.0}, timeout=10))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    busy = 'endpoint="/sleep"} 2'
    while busy not in httpx.get(server.url + "/metrics").text and time.monotonic() < deadline:
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert server.proc.wait(10) == 0
    assert [r.status_code for r in results] == [200, 200]
    out = server.output()
    assert re.search(r"Worker \d+ shutting down: draining 2 request\(s\) in flight", out), out
    assert re.search(r"Worker \d+ drained 2 request\(s\) in \d+\.\d\d s", out), out
