"""Both parser adapters (httptools, h11) driven over an in-memory transport with the same cases.

Between the sans-IO wire tests (``test_wire.py``) and the socket tests (``test_protocol.py``,
``test_fuzz.py``): the real connection classes and apps, fed exact reads on a loop that runs until the
connection goes quiet, with no sockets and no clock: a few milliseconds a case. The hostile-input table,
the split-head cases and the fuzzing seeds are the socket tests' own, and so are the limits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asgiserve
from tests.apps import raw_asgi
from tests.memory import PARSERS, Conn, connect
from tests.rawhttp import parse_responses
from tests.test_fuzz import SEEDS, mutate, mutation
from tests.test_protocol import HOSTILE, SPLIT_AFTER, req

# test_protocol.py's server flags, as limits.
LIMITS = {"max_body_size": 2_000_000, "max_header_size": 4096, "max_headers": 30, "max_url_size": 1024}

disconnect_probe: list[str] = []  # what /disconnect-probe received after its body


async def app(scope, receive, send):
    """``tests.apps.raw_asgi.app``, plus routes that wait on loop passes instead of the clock."""
    path = scope.get("path")
    if path == "/yield":  # answers after n loop passes: a slow request without a clock
        for _ in range(int(scope["query_string"].split(b"=")[1])):
            await asyncio.sleep(0)
        body = b"/yield?" + scope["query_string"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/raise-after-yield":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0)
        raise RuntimeError("boom after start")
    elif path == "/disconnect-probe":
        while (await receive()).get("more_body"):
            pass
        disconnect_probe.append((await receive())["type"])
        disconnect_probe.append((await receive())["type"])  # and again: it stays disconnected
    else:
        await raw_asgi.app(scope, receive, send)


class Prediction(msgspec.Struct):
    """An api's output."""

    result: str
    length: int


@asgiserve.service(name="Tiny")
class Tiny:
    """A service with one direct api and one streamed over ASGI."""

    @asgiserve.api
    async def predict(self, text: str) -> Prediction:
        """Answered as a direct call."""
        return Prediction(result=text.upper(), length=len(text))

    @asgiserve.api
    async def tokens(self, n: int) -> AsyncGenerator[str, None]:
        """Streamed over ASGI, a loop pass between tokens."""
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i} "


@pytest.fixture(params=PARSERS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def conn(kind):
    c = connect(kind, app, **LIMITS)
    yield c
    c.server.close()


@pytest.fixture
def api(kind):
    c = connect(kind, asgiserve.to_asgi(Tiny), **LIMITS)  # an app per server: its lifespan ends with it
    yield c
    c.server.close()


def post(path: str, body: bytes, headers: str = "", version: str = "1.1") -> bytes:
    """A POST with a Content-Length body."""
    return req(path, "POST", f"Content-Length: {len(body)}\r\n{headers}", body, version)


def still_serves(c: Conn) -> None:
    """The server still answers a valid request on a new connection."""
    ex = c.server.connect().exchange(req("/echo"))
    assert ex.statuses == [200] and not ex.closed


def in_pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` cut every ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- hostile input: the socket suite's table, the same verdict on both parsers -----------------------


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input(conn, case):
    data, expected = HOSTILE[case]
    ex = conn.exchange(data)
    assert (ex.statuses, ex.closed) == ([expected], True), ex.raw
    still_serves(conn)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_in_small_reads(conn, case):
    # The same bytes in reads of 7 bytes (1 KiB when large): the verdict does not depend on where
    # the reads end.
    data, expected = HOSTILE[case]
    conn.send_pieces(in_pieces(data, 7 if len(data) < 2000 else 1024))
    ex = conn.result()
    assert (ex.statuses, ex.closed) == ([expected], True), ex.raw


def test_hostile_after_valid_pipelined_request(conn):
    ex = conn.exchange(req("/yield?n=20") + b"GET /echo HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n")
    assert ex.statuses == [200, 400] and ex.closed


@pytest.mark.parametrize("name", SPLIT_AFTER)
def test_a_head_cut_at_the_end_of_a_read_is_measured_alone(conn, name):
    head = req("/echo", "POST", "Content-Length: 3\r\nX-Pad: " + "p" * 100 + "\r\n", b"end")
    conn.send(SPLIT_AFTER[name] + head[:60]).send(head[60:])
    ex = conn.result()
    bodies = [r.body for r in ex.responses]
    assert not ex.closed and len(bodies) == (99 if name == "many-small-requests" else 1) + 1
    assert bodies[-1] == b"end"


def test_a_head_cut_at_the_end_of_a_read_still_has_a_limit(conn):
    flood = b"GET /echo HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * 90) for i in range(60)
    )
    conn.send(post("/echo", b"ok") + flood).send(b"\r\n")
    ex = conn.result()
    assert ex.statuses == [200, 431] and ex.closed


# -- limits at their edges ---------------------------------------------------------------------------


def test_body_limit_by_content_length(conn):
    body = b"b" * LIMITS["max_body_size"]
    ex = conn.exchange(req("/echo", "POST", f"Content-Length: {len(body)}\r\n") + body)
    assert ex.statuses == [200] and ex.responses[0].body == body and not ex.closed
    ex = conn.exchange(req("/echo", "POST", f"Content-Length: {len(body) + 1}\r\n"))
    assert ex.statuses == [413] and ex.closed


def test_body_limit_chunked(conn):
    limit = LIMITS["max_body_size"]
    chunk = b"%x\r\n" % (limit // 2) + b"c" * (limit // 2) + b"\r\n"
    ex = conn.exchange(req("/echo", "POST", "Transfer-Encoding: chunked\r\n") + chunk * 2 + b"0\r\n\r\n")
    assert ex.statuses == [200] and len(ex.responses[0].body) == limit and not ex.closed
    ex = conn.exchange(
        req("/echo", "POST", "Transfer-Encoding: chunked\r\n") + chunk * 2 + b"1\r\nx\r\n0\r\n\r\n"
    )
    assert ex.statuses == [413] and ex.closed


def test_header_count_limit(conn):
    fields = "".join(f"X-{i}: 1\r\n" for i in range(LIMITS["max_headers"] - 1))  # and Host
    assert conn.exchange(req("/echo", headers=fields)).statuses == [200]
    ex = conn.exchange(req("/echo", headers=fields + "X-Last: 1\r\n"))
    assert ex.statuses == [431] and ex.closed


def test_header_size_limit(conn):
    ok = req("/echo", headers="X-Big: " + "a" * (LIMITS["max_header_size"] - 200) + "\r\n")
    assert conn.exchange(ok).statuses == [200]
    ex = conn.exchange(req("/echo", headers="X-Big: " + "a" * LIMITS["max_header_size"] + "\r\n"))
    assert ex.statuses == [431] and ex.closed


def test_url_limit(conn):
    limit = LIMITS["max_url_size"]
    assert conn.exchange(req("/" + "u" * (limit - 1))).statuses == [404]  # a target of exactly the limit
    ex = conn.exchange(req("/" + "u" * (limit + 20)))
    assert ex.statuses == [414] and ex.closed


def test_url_limit_is_the_targets_length(conn):
    ex = conn.exchange(req("/" + "u" * LIMITS["max_url_size"]))  # one byte over
    assert ex.statuses == [414] and ex.closed


def test_empty_line_before_a_request_in_another_read(conn):
    # RFC 9112 2.2: empty lines before a request line are ignored, wherever the reads end.
    conn.send(b"\r\nG").send(req("/echo")[1:])
    ex = conn.result()
    assert ex.statuses == [200] and not ex.closed


def test_connections_over_the_limit_get_503(kind):
    c = connect(kind, app, max_connections=1)
    try:
        ex = c.server.connect().result()
        assert ex.statuses == [503] and ex.closed
        assert c.exchange(req("/echo")).statuses == [200]
    finally:
        c.server.close()


# -- HTTP/1.1 semantics ------------------------------------------------------------------------------


def test_simple_get(conn):
    ex = conn.exchange(req("/echo"))
    (r,) = ex.responses
    assert r.status == 200 and r.body == b"" and not ex.closed
    assert ex.raw == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 0\r\n"
        b"server: asgiserve\r\ndate: Mon, 23 Nov 2026 12:00:00 GMT\r\n\r\n"
    )


def test_keep_alive_and_default_headers(conn):
    for i in range(3):
        (r,) = conn.exchange(post("/echo", b"%d" % i)).responses
        assert r.status == 200 and r.body == b"%d" % i
        assert r.headers["server"] == "asgiserve"
        time.strptime(r.headers["date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert not conn.closed


def test_body_bytes_are_not_head_bytes(conn):
    body = b'{\n  "a": "x\ry"\n}\r\n\r\n\n'
    ex = conn.exchange(post("/echo", body))
    assert ex.statuses == [200] and ex.responses[0].body == body


def test_unread_body_over_limit_after_response(conn):
    # The app answers without reading; the body then runs over the limit: the connection just closes.
    head = conn.exchange(req("/status?code=200", "POST", "Transfer-Encoding: chunked\r\n")).raw
    assert head.startswith(b"HTTP/1.1 200")
    for _ in range(40):
        conn.send(b"10000\r\n" + b"z" * 0x10000 + b"\r\n")
    ex = conn.exchange(b"")
    assert ex.closed and b"HTTP/1.1" not in ex.raw
    still_serves(conn)


def test_pipelining_answers_in_order(conn):
    ex = conn.exchange(req("/yield?n=30") + req("/yield?n=1") + post("/echo", b"abc"))
    assert [r.body for r in ex.responses] == [b"/yield?n=30", b"/yield?n=1", b"abc"]


def test_pipelining_answers_in_order_in_any_reads(conn):
    data = req("/yield?n=5") + post("/echo", b"abc") + req("/stream?n=2") + req("/yield?n=0")
    expected = [b"/yield?n=5", b"abc", b"part0;part1;", b"/yield?n=0"]
    conn.send_pieces(in_pieces(data, 5))
    assert [r.body for r in conn.result().responses] == expected


@pytest.mark.parametrize("value", ["close", "keep-alive, Close", "CLOSE"])
def test_connection_close_in_any_form(conn, value):
    ex = conn.exchange(req("/echo", headers=f"Connection: {value}\r\n") + req("/echo"))
    assert ex.statuses == [200] and ex.closed
    assert ex.responses[0].headers["connection"] == "close"


def test_http10(conn):
    ex = conn.exchange(b"GET /stream HTTP/1.0\r\n\r\n")
    (r,) = ex.responses
    assert ex.closed and r.body == b"part0;part1;part2;" and "transfer-encoding" not in r.headers


def test_http10_keep_alive(conn):
    ex = conn.exchange(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert not ex.closed and ex.responses[0].headers["connection"] == "keep-alive"
    assert conn.exchange(b"GET /echo HTTP/1.0\r\n\r\n").closed


def test_head(conn):
    ex = conn.exchange(req("/echo", "HEAD"), head_request=True)
    (r,) = ex.responses
    assert r.headers["content-length"] == "0" and ex.raw.endswith(b"\r\n\r\n")
    ex = conn.exchange(req("/big?n=1000", "HEAD"), head_request=True)
    assert ex.responses[0].headers["content-length"] == "1000" and ex.raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses(conn, code):
    ex = conn.exchange(req(f"/status?code={code}") + req("/echo"))
    assert ex.statuses == [code, 200] and b"should not be sent" not in ex.raw
    assert "content-length" not in ex.responses[0].headers


def test_chunked_request_body(conn):
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ex = conn.exchange(req("/echo", "POST", "Transfer-Encoding: chunked\r\n", body))
    assert ex.responses[0].body == b"Wikipedia" and not ex.closed


@pytest.mark.parametrize(
    "junk",
    [b"\x16\x03\x01\x00\xa5\x01\x00", b"SSH-2.0-OpenSSH_8.9\r\n", b"GETX", b"get / HTTP/1.1"],
    ids=["tls-record", "ssh-banner", "unknown-method", "lowercase-method"],
)
def test_bytes_that_start_no_request_are_refused_at_once(conn, junk):
    # No clock runs here: an answer at all means it came without waiting for the header deadline.
    ex = conn.exchange(junk)
    assert ex.statuses == [400] and ex.closed
    ex = conn.server.connect().exchange(req("/echo") + junk)
    assert ex.statuses == [200, 400] and ex.closed


@pytest.mark.parametrize(
    ("line", "status"),
    [(b"GET  /echo  HTTP/1.1", 200), (b"GET   /echo HTTP/1.1", 200), (b"GET\t/echo HTTP/1.1", 400)],
)
def test_request_line_whitespace_as_llhttp_takes_it(conn, line, status):
    ex = conn.exchange(line + b"\r\nHost: t\r\n\r\n")
    assert ex.statuses == [status]


def test_trailer_fields_stay_out_of_the_next_request(conn):
    # A chunked body answered before it was read: its trailer fields belong to no request's headers.
    conn.exchange(req("/status?code=200", "POST", "Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n"))
    ex = conn.exchange(b"0\r\nX-Trailer: 1\r\n\r\n" + req("/scope"))
    assert ex.statuses == [200]
    assert json.loads(ex.responses[0].body)["headers"] == [["host", "t"]]


def test_streaming_response_is_chunked(conn):
    ex = conn.exchange(req("/stream?n=4"))
    r = ex.responses[0]
    assert r.headers["transfer-encoding"] == "chunked" and r.complete and not ex.closed
    assert ex.raw.endswith(b"\r\n\r\n6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n6\r\npart3;\r\n0\r\n\r\n")


def test_expect_100_continue_before_the_body(conn):
    head = req("/echo", "POST", "Content-Length: 5\r\nExpect: 100-continue\r\n")
    assert conn.exchange(head).raw == b"HTTP/1.1 100 Continue\r\n\r\n"
    ex = conn.exchange(b"hello")
    (r,) = ex.responses
    assert r.status == 200 and r.body == b"hello"


def test_expect_100_continue_unread_body(conn):
    # An app that answers without reading the body gets no 100, and the connection closes.
    ex = conn.exchange(req("/status?code=200", "POST", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
    assert ex.statuses == [200] and ex.closed and b"100 Continue" not in ex.raw


def test_scope_and_state(conn):
    ex = conn.exchange(req("/scope/%7Eme?a=1&b=%20", headers="X-Trailing: v \t\r\n"))
    info = json.loads(ex.responses[0].body)
    assert (
        info["path"] == "/scope/~me" and info["raw_path"] == "/scope/%7Eme" and info["query"] == "a=1&b=%20"
    )
    assert ["x-trailing", "v"] in info["headers"] and ["host", "t"] in info["headers"]
    assert info["state"] == ["shared", "started"]
    ex = conn.exchange(b"GET http://example.com/scope?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    info = json.loads(ex.responses[0].body)
    assert info["path"] == "/scope" and info["query"] == "x=1"
    assert info["state"] == ["shared", "started"]  # "mutated" by the request before is not visible


# -- app misbehaviour --------------------------------------------------------------------------------


def test_raise_before_start_gives_500_and_close(conn):
    ex = conn.exchange(req("/raise-before") + req("/echo"))
    assert ex.statuses == [500] and ex.closed


def test_raise_after_start_closes_without_final_chunk(conn):
    ex = conn.exchange(req("/raise-after-yield"))
    assert ex.closed and ex.raw.startswith(b"HTTP/1.1 200 OK") and b"partial" in ex.raw
    assert not ex.raw.endswith(b"0\r\n\r\n") and not ex.responses[0].complete


def test_no_response_gives_500(conn):
    ex = conn.exchange(req("/no-response"))
    assert ex.statuses == [500] and ex.closed


@pytest.mark.parametrize("path", ["/short", "/long"])
def test_content_length_mismatch_closes(conn, path):
    ex = conn.exchange(req(path) + req("/echo"))
    assert ex.closed and ex.raw.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("kind_", ["crlf", "lf", "nul"])
def test_response_splitting_refused(conn, kind_):
    ex = conn.exchange(req(f"/bad-header?kind={kind_}"))
    assert ex.statuses == [500] and ex.closed and b"x-injected" not in ex.raw and b"x-test" not in ex.raw


# -- the client leaves ---------------------------------------------------------------------------------


def test_connection_lost_is_http_disconnect(conn):
    disconnect_probe.clear()
    conn.exchange(post("/disconnect-probe", b"body"))
    assert disconnect_probe == []  # waiting: nothing came after the body
    conn.lose(ConnectionResetError())
    assert disconnect_probe == ["http.disconnect", "http.disconnect"]


def test_client_eof_is_http_disconnect(conn):
    disconnect_probe.clear()
    conn.exchange(post("/disconnect-probe", b"body"))
    conn.eof()
    assert disconnect_probe == ["http.disconnect", "http.disconnect"] and conn.closed


def test_disconnect_reaches_the_app_and_late_sends_are_harmless(conn):
    before = dict(raw_asgi.events)
    conn.exchange(req("/wait-disconnect"))
    conn.lose()
    assert raw_asgi.events["disconnects"] == before["disconnects"] + 1
    assert raw_asgi.events["late_sends"] == before["late_sends"] + 1
    assert conn.raw == b""


def test_disconnect_reaches_pipelined_requests(conn):
    disconnect_probe.clear()
    conn.exchange(post("/disconnect-probe", b"1") + post("/disconnect-probe", b"2"))
    conn.lose()
    assert disconnect_probe[:2] == ["http.disconnect", "http.disconnect"]


# -- flow control --------------------------------------------------------------------------------------


def test_a_slow_reader_pauses_the_app(kind):
    c = connect(kind, app, high_water=65536)
    try:
        c.send(req("/big?n=1000000"))
        assert c.transport.write_paused and len(c.raw) < 200_000  # the app waits on the transport
        while not c.result().responses or not c.result().responses[0].complete:
            c.transport.take()
            c.settle()
        (r,) = c.result().responses
        assert len(r.body) == 1_000_000 and not c.closed
    finally:
        c.server.close()


# -- direct api calls (an asgiserve service) ------------------------------------------------------------


def test_direct_api_call(api):
    ex = api.exchange(post("/predict", b'{"text":"hi"}', "Content-Type: application/json\r\n"))
    (r,) = ex.responses
    assert r.status == 200 and json.loads(r.body) == {"result": "HI", "length": 2} and not ex.closed
    assert r.headers["content-type"] == "application/json"


def test_direct_api_calls_pipelined_with_asgi_requests(api):
    calls = [post("/predict", b'{"text":"%d"}' % i) for i in range(3)]
    ex = api.exchange(calls[0] + req("/livez") + calls[1] + post("/tokens", b'{"n":3}') + calls[2])
    assert ex.statuses == [200] * 5
    bodies = [r.body for r in ex.responses]
    assert [json.loads(bodies[i])["result"] for i in (0, 2, 4)] == ["0", "1", "2"]
    assert bodies[1] == b"ok\n" and bodies[3] == b"t0 t1 t2 "


def test_direct_api_call_in_pieces(api):
    data = post("/predict", b'{"text":"split"}') * 3
    api.send_pieces(in_pieces(data, 3))
    assert [json.loads(r.body)["result"] for r in api.result().responses] == ["SPLIT"] * 3


def test_direct_api_call_bad_input(api):
    ex = api.exchange(post("/predict", b'{"text":'))
    assert ex.statuses[0] in (400, 422) and not ex.closed
    assert api.exchange(post("/predict", b'{"text":"ok"}')).statuses == [200]


def test_direct_api_call_http10_closes(api):
    ex = api.exchange(post("/predict", b'{"text":"old"}', version="1.0"))
    assert ex.statuses == [200] and ex.closed and json.loads(ex.responses[0].body)["result"] == "OLD"


def test_direct_api_call_expect_100(api):
    body = b'{"text":"wait"}'
    assert api.exchange(
        req("/predict", "POST", f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n")
    ).raw == (b"HTTP/1.1 100 Continue\r\n\r\n")
    assert json.loads(api.exchange(body).responses[0].body)["result"] == "WAIT"


# -- hypothesis: reads split anywhere; mutated requests --------------------------------------------------

STREAM_PARTS = [
    req("/echo"),
    post("/echo", b"hello"),
    req("/echo", "POST", "Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"),
    req("/stream?n=2"),
    req("/yield?n=3"),
    req("/echo", "HEAD"),
    req("/scope/a%20b?q=1"),
    b"\r\n" + req("/echo"),
    req("/status?code=204"),
]
API_PARTS = [
    post("/predict", b'{"text":"abc"}'),
    req("/livez"),
    post("/tokens", b'{"n":2}'),
    post("/predict", b'{"text":'),
]


ENDINGS = [
    b"",
    req("/echo", headers="Connection: close\r\n"),
    b"GET /x HTTP/1.1\r\nHost: t\r\nX: \x01\r\n\r\n",
]
STREAMS = {"asgi": (lambda: app, STREAM_PARTS), "api": (lambda: asgiserve.to_asgi(Tiny), API_PARTS)}


def _answers(kind: str, make_app, pieces: list[bytes]) -> tuple[bytes, bool]:
    c = connect(kind, make_app(), **LIMITS)
    try:
        c.send_pieces(pieces)
        return c.raw, c.closed
    finally:
        c.server.close()


@pytest.mark.parametrize("kind", PARSERS)
@pytest.mark.parametrize("target", sorted(STREAMS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_reads_split_anywhere_give_the_same_answers(kind, target, data):
    make_app, parts = STREAMS[target]
    stream = b"".join(data.draw(st.lists(st.sampled_from(parts), min_size=1, max_size=6)))
    stream += data.draw(st.sampled_from(ENDINGS))
    points = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8, unique=True)))
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    whole = _answers(kind, make_app, [stream])
    assert whole[0]  # something was answered
    assert _answers(kind, make_app, pieces) == whole


@pytest.mark.parametrize("kind", PARSERS)
@settings(max_examples=150, deadline=None)
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_requests(kind, seed, ops):
    data = mutate(seed, ops)
    c = connect(kind, app, max_body_size=100_000)
    try:
        raw = c.send(data).raw
        final = [r for r in parse_responses(raw) if r.status >= 200]
        # As test_fuzz.py: each answered request needs its own "HTTP/1.x", plus at most one refusal, and
        # nothing is answered after a response that closes.
        assert len(final) <= data.count(b"HTTP/1.") + 1, (data, raw)
        closing = [i for i, r in enumerate(final) if r.headers.get("connection") == "close"]
        assert closing in ([], [len(final) - 1]), (data, raw)
        assert all(r.status in (200, 400, 404, 413, 414, 431, 500, 501) for r in final), raw
        still_serves(c)
    finally:
        c.server.close()
