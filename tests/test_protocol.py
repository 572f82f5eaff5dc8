"""Raw-bytes protocol suite, run against both parsers (httptools and h11) on real sockets.

Every hostile request is sent to both servers; the test fails unless both give the expected status and
close the connection, and both still serve a valid request afterwards.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import ServerProc, start
from tests.rawhttp import connect, exchange, get, parse_responses, read_all, wait_listening

PARSERS = ["httptools", "h11"]
LIMITS = [
    "--max-body-size", "2000000", "--max-header-size", "4096", "--max-headers", "30",
    "--max-url-size", "1024", "--keep-alive-timeout", "1", "--header-timeout", "1",
    "--no-access-log",
]  # fmt: skip


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> dict[str, ServerProc]:
    tmp = tmp_path_factory.mktemp("proto")
    started = {
        p: start("asgiserve", "tests.apps.raw_asgi:app", tmp, "--http", p, *LIMITS, ready=False)
        for p in PARSERS
    }
    try:
        for s in started.values():
            wait_listening(s.port, s.proc)
        yield started
    finally:
        for s in started.values():
            s.stop()


@pytest.fixture(params=PARSERS)
def port(request, servers) -> int:
    return servers[request.param].port


def req(
    path: str = "/echo", method: str = "GET", headers: str = "", body: bytes = b"", version: str = "1.1"
) -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n{headers}\r\n".encode() + body


# -- hostile input: the same verdict on both parsers -------------------------------------------------

H = b"POST /echo HTTP/1.1\r\nHost: t\r\n"
HOSTILE = {
    "cl-and-te": (H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    "cl-duplicate-same": (H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    "cl-duplicate-differ": (H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "cl-list": (H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    "cl-plus": (H + b"Content-Length: +3\r\n\r\nabc", 400),
    "cl-hex": (H + b"Content-Length: 0x3\r\n\r\nabc", 400),
    "cl-negative": (H + b"Content-Length: -1\r\n\r\n", 400),
    "cl-30-digits": (H + b"Content-Length: 123456789012345678901234567890\r\n\r\n", 400),
    "cl-inner-space": (H + b"Content-Length: 1 2\r\n\r\n", 400),
    "te-gzip-chunked": (H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "te-chunked-twice-list": (H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    "te-duplicate": (H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-unknown": (H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    "te-chunked-not-final": (H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    "te-not-chunked": (H + b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n", 400),
    "te-vertical-tab": (H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    "te-http10": (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-http10-with-cl": (b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    "chunk-size-letters": (H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-0x": (H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-negative": (H + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-overflow": (H + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-bare-lf": (H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
    "chunk-data-no-crlf": (H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400),
    "chunk-data-short": (H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nab\r\n0\r\n\r\n", 400),
    "obs-fold": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n", 400),
    "bare-lf-everywhere": (b"GET /echo HTTP/1.1\nHost: t\n\n", 400),
    "bare-lf-one-header": (b"GET /echo HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400),
    "lone-cr": (b"GET /echo HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
    "lone-cr-in-value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", 400),
    "space-before-colon": (b"GET /echo HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "tab-before-colon": (b"GET /echo HTTP/1.1\r\nHost\t: t\r\n\r\n", 400),
    "ctl-in-value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400),
    "nul-in-value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    "del-in-value": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\x7fb\r\n\r\n", 400),
    "empty-header-name": (b"GET /echo HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n", 400),
    "header-without-colon": (b"GET /echo HTTP/1.1\r\nHost: t\r\nXY\r\n\r\n", 400),
    "ctl-in-target": (b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "unknown-method": (b"FOO /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "lowercase-method": (b"get /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "http-1.2": (b"GET /echo HTTP/1.2\r\nHost: t\r\n\r\n", 400),
    "http-2.0": (b"GET /echo HTTP/2.0\r\nHost: t\r\n\r\n", 400),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "http-0.9": (b"GET /echo\r\n\r\n", 400),
    "no-host": (b"GET /echo HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "tls-client-hello": (bytes.fromhex("16030100c4010000c00303") + bytes(range(32)) + b"\x00\x1c" * 8, 400),
    "header-too-large": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n", 431),
    "headers-too-many": (b"GET /echo HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n", 431),
    "head-flood-no-end": (b"GET /echo HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 100_000, 431),
    "url-too-long": (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    "url-flood-no-end": (b"GET /" + b"a" * 100_000, 414),
    "body-over-limit-by-cl": (H + b"Content-Length: 2000001\r\n\r\n", 413),
    "body-over-limit-chunked": (H + b"Transfer-Encoding: chunked\r\n\r\n" + (b"100000\r\n" + b"x" * 0x100000 + b"\r\n") * 2, 413),
}  # fmt: skip


def verdict(port: int, data: bytes) -> tuple[list[int], bool]:
    ex = exchange(port, data, timeout=3.0)
    return ex.statuses, ex.closed


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_same_verdict_on_both_parsers(servers, case):
    data, expected = HOSTILE[case]
    verdicts = {p: verdict(s.port, data) for p, s in servers.items()}
    assert verdicts["httptools"] == verdicts["h11"], verdicts
    assert verdicts["httptools"] == ([expected], True), verdicts
    for s in servers.values():
        r = get(s.port, "/echo")
        assert r.status == 200


def test_hostile_after_valid_pipelined_request(port):
    # A valid request answered first, then the refusal, then the connection closes.
    ex = exchange(port, req("/slow?s=0.1") + b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n")
    assert ex.statuses == [200, 400] and ex.closed


def _in_two_reads(port: int, first: bytes, second: bytes) -> tuple[bytes, bool]:
    """Send ``first``, wait so that the server reads it alone, then ``second``; collect the reply."""
    with connect(port) as s:
        s.sendall(first)
        time.sleep(0.2)
        try:
            s.sendall(second)
        except OSError:
            pass
        return read_all(s, timeout=0.5)  # under the 1 s keep-alive timeout


# The header size limit (4096 here) is per head: a read that ends inside a head after other requests,
# or after a body, counts only that head's bytes toward it.
SPLIT_AFTER = {
    "many-small-requests": b"".join(req("/echo", "POST", "Content-Length: 2\r\n", b"%02d" % i) for i in range(99)),
    "a-large-body": req("/echo", "POST", "Content-Length: 20000\r\n", b"b" * 20000),
}  # fmt: skip


@pytest.mark.parametrize("name", SPLIT_AFTER)
def test_a_head_cut_at_the_end_of_a_read_is_measured_alone(port, name):
    head = req("/echo", "POST", "Content-Length: 3\r\nX-Pad: " + "p" * 100 + "\r\n", b"end")
    raw, closed = _in_two_reads(port, SPLIT_AFTER[name] + head[:60], head[60:])
    bodies = [r.body for r in parse_responses(raw)]
    assert not closed and len(bodies) == (99 if name == "many-small-requests" else 1) + 1
    assert bodies[-1] == b"end"


def test_a_head_cut_at_the_end_of_a_read_still_has_a_limit(port):
    flood = b"GET /echo HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 90) for i in range(60))
    raw, closed = _in_two_reads(port, req("/echo", "POST", "Content-Length: 2\r\n", b"ok") + flood, b"\r\n")
    assert [r.status for r in parse_responses(raw)] == [200, 431] and closed


# -- HTTP/1.1 semantics ------------------------------------------------------------------------------


def test_keep_alive_and_default_headers(port):
    with connect(port) as s:
        for i in range(3):
            s.sendall(req("/echo", "POST", "Content-Length: 1\r\n", b"%d" % i))
            data = s.recv(65536)
            (r,) = parse_responses(data)
            assert r.status == 200 and r.body == b"%d" % i
            assert r.headers["server"] == "asgiserve"
            time.strptime(r.headers["date"], "%a, %d %b %Y %H:%M:%S GMT")


def test_body_bytes_are_not_head_bytes(port):
    body = b'{\n  "a": "x\ry"\n}\r\n\r\n\n'
    ex = exchange(port, req("/echo", "POST", f"Content-Length: {len(body)}\r\n", body), timeout=0.5)
    assert ex.statuses == [200] and ex.responses[0].body == body


def test_unread_body_over_limit_after_response(port):
    # The app answers without reading; the body then runs over the limit: the connection just closes.
    with connect(port) as s:
        s.sendall(req("/status?code=200", "POST", "Transfer-Encoding: chunked\r\n"))
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200")
        try:
            for _ in range(40):
                s.sendall(b"10000\r\n" + b"z" * 0x10000 + b"\r\n")
        except OSError:
            pass
        raw, closed = read_all(s, timeout=3)
        assert closed and b"HTTP/1.1" not in raw
    assert get(port, "/echo").status == 200


def test_pipelining_answers_in_order(port):
    data = req("/slow?s=0.3") + req("/slow?s=0.01") + req("/echo", "POST", "Content-Length: 3\r\n", b"abc")
    with connect(port) as s:
        s.sendall(data)
        raw = b""
        while len(parse_responses(raw) if raw.count(b"\r\n\r\n") >= 3 else []) < 3:
            raw += s.recv(65536)
    bodies = [r.body for r in parse_responses(raw)]
    assert bodies == [b"/slow?s=0.3", b"/slow?s=0.01", b"abc"]


@pytest.mark.parametrize("value", ["close", "keep-alive, Close", "CLOSE"])
def test_connection_close_in_any_form(port, value):
    ex = exchange(port, req("/echo", headers=f"Connection: {value}\r\n") + req("/echo"))
    assert ex.statuses == [200] and ex.closed
    assert ex.responses[0].headers["connection"] == "close"


def test_http10(port):
    ex = exchange(port, b"GET /stream HTTP/1.0\r\n\r\n")
    (r,) = ex.responses
    assert ex.closed and r.body == b"part0;part1;part2;" and "transfer-encoding" not in r.headers
    ex = exchange(port, b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.5)
    assert not ex.closed and ex.responses[0].headers["connection"] == "keep-alive"


def test_chunked_request_and_response(port):
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ex = exchange(port, req("/echo", "POST", "Transfer-Encoding: chunked\r\n", body), timeout=0.5)
    assert ex.responses[0].body == b"Wikipedia"
    ex = exchange(port, req("/stream?n=4"), timeout=0.5)
    r = ex.responses[0]
    assert (
        r.headers["transfer-encoding"] == "chunked" and r.complete and r.body == b"part0;part1;part2;part3;"
    )


def test_expect_100_continue(port):
    with connect(port) as s:
        s.sendall(req("/echo", "POST", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        (r,) = parse_responses(s.recv(65536))
        assert r.status == 200 and r.body == b"hello"
    # An app that answers without reading the body gets no 100, and the connection closes.
    ex = exchange(port, req("/status?code=200", "POST", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
    assert ex.statuses == [200] and ex.closed and b"100 Continue" not in ex.raw


def test_head_and_bodyless_statuses(port):
    ex = exchange(port, req("/echo", "HEAD"), timeout=0.5, head_request=True)
    (r,) = ex.responses
    assert r.headers["content-length"] == "0" and ex.raw.endswith(b"\r\n\r\n")
    ex = exchange(port, req("/big?n=1000", "HEAD"), timeout=0.5, head_request=True)
    assert ex.responses[0].headers["content-length"] == "1000" and ex.raw.endswith(b"\r\n\r\n")
    for code in (204, 304):
        ex = exchange(port, req(f"/status?code={code}") + req("/echo"), timeout=0.5)
        assert ex.statuses == [code, 200] and b"should not be sent" not in ex.raw
        assert "content-length" not in ex.responses[0].headers


def test_flow_control_slow_app_and_slow_client(port):
    body = b"y" * 1_500_000
    ex = exchange(port, req("/slowread", "POST", f"Content-Length: {len(body)}\r\n", body), timeout=10)
    assert ex.responses[0].body == b"1500000"
    with connect(port) as s:
        s.sendall(req("/big?n=20000000"))
        time.sleep(0.5)  # more than the socket buffers hold: the server must wait on the transport
        raw = b""
        while len(raw) < 20_000_000:
            data = s.recv(1 << 20)
            if not data:
                break
            raw += data
        raw += read_all(s, timeout=0.3)[0]
    (r,) = parse_responses(raw)
    assert r.complete and len(r.body) == 20_000_000


def test_disconnect_reaches_the_app(port):
    before = json.loads(get(port).body)
    with connect(port) as s:
        s.sendall(req("/wait-disconnect"))
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = json.loads(get(port).body)
        if after["late_sends"] > before["late_sends"]:
            break
        time.sleep(0.05)
    assert after["disconnects"] == before["disconnects"] + 1
    assert after["late_sends"] == before["late_sends"] + 1


def test_scope_and_state(port):
    ex = exchange(port, req("/scope/%7Eme?a=1&b=%20", headers="X-Trailing: v \t\r\n"), timeout=0.5)
    info = json.loads(ex.responses[0].body)
    assert (
        info["path"] == "/scope/~me" and info["raw_path"] == "/scope/%7Eme" and info["query"] == "a=1&b=%20"
    )
    assert ["x-trailing", "v"] in info["headers"] and ["host", "t"] in info["headers"]
    assert info["state"] == ["shared", "started"]  # "mutated" from an earlier request is not visible
    ex = exchange(port, b"GET http://example.com/scope?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=0.5)
    info = json.loads(ex.responses[0].body)
    assert info["path"] == "/scope" and info["query"] == "x=1"


# -- app misbehaviour --------------------------------------------------------------------------------


def test_raise_before_start_gives_500_and_close(port):
    ex = exchange(port, req("/raise-before") + req("/echo"))
    assert ex.statuses == [500] and ex.closed


def test_raise_after_start_closes_without_final_chunk(port):
    ex = exchange(port, req("/raise-after"))
    assert ex.closed and ex.raw.startswith(b"HTTP/1.1 200 OK") and b"partial" in ex.raw
    assert not ex.raw.endswith(b"0\r\n\r\n") and not ex.responses[0].complete


def test_no_response_gives_500(port):
    ex = exchange(port, req("/no-response"))
    assert ex.statuses == [500] and ex.closed


@pytest.mark.parametrize("path", ["/short", "/long"])
def test_content_length_mismatch_closes(port, path):
    ex = exchange(port, req(path) + req("/echo"))
    assert ex.closed and ex.raw.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("kind", ["crlf", "lf", "nul"])
def test_response_splitting_refused(port, kind):
    ex = exchange(port, req(f"/bad-header?kind={kind}"))
    assert ex.statuses == [500] and ex.closed and b"x-injected" not in ex.raw and b"x-test" not in ex.raw


# -- limits ------------------------------------------------------------------------------------------


def test_header_timeout_closes_silent_and_trickling_clients(port):
    with connect(port) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /echo HTTP/1.1\r\nHo")
        raw, closed = read_all(s, timeout=4)
        assert closed and raw == b"" and time.monotonic() - t0 < 3
    with connect(port) as s:
        t0 = time.monotonic()
        closed = False
        for byte in req("/echo") * 4:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 4:
                break
        if not closed:
            closed = read_all(s, timeout=1)[1]
        assert closed and time.monotonic() - t0 < 4


def test_keep_alive_timeout_closes_idle_connection(port):
    with connect(port) as s:
        s.sendall(req("/echo"))
        assert parse_responses(s.recv(65536))[0].status == 200
        t0 = time.monotonic()
        raw, closed = read_all(s, timeout=4)
        assert closed and raw == b"" and 0.5 < time.monotonic() - t0 < 3
