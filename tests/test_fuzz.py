"""Fuzzing the server with mutated requests (hypothesis, bounded): it never crashes, never answers one
request twice, and still answers a valid request afterwards, on both parsers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import start
from tests.rawhttp import connect, get, parse_responses, read_all, wait_listening

SEEDS = [
    b"GET /echo?x=1 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
]
PIECES = [
    b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b",", b"\x00", b"\x7f", b"\xff", b"0", b"9", b"f", b"-", b"+",
    b"chunked", b"Content-Length: ", b"Transfer-Encoding: ", b"HTTP/1.1", b"\r\n\r\n", b"ffffffffffffffffff",
]  # fmt: skip

mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "duplicate"]),
    st.floats(0, 1),
    st.integers(1, 12),
    st.one_of(st.sampled_from(PIECES), st.binary(min_size=1, max_size=4)),
)


def mutate(seed: bytes, ops: list[tuple[str, float, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for op, where, size, piece in ops:
        i = int(where * len(data))
        if op == "insert":
            data[i:i] = piece
        elif op == "delete":
            del data[i : i + size]
        elif op == "replace":
            data[i : i + len(piece)] = piece
        else:
            data[i:i] = data[i : i + size]
    return bytes(data)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def fuzz_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    args = ("--http", request.param, "--no-access-log", "--header-timeout", "1", "--max-body-size", "100000")
    server = start("asgiserve", "tests.apps.raw_asgi:app", tmp, *args, ready=False)
    wait_listening(server.port, server.proc)
    yield server
    assert server.stop() == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_requests(fuzz_server, seed, ops):
    data = mutate(seed, ops)
    with connect(fuzz_server.port) as s:
        s.sendall(data)
        raw, _ = read_all(s, timeout=0.15)
    assert fuzz_server.proc.poll() is None, fuzz_server.output()
    final = [r for r in parse_responses(raw) if r.status >= 200]
    # Each answered request needs its own "HTTP/1.x"; trailing garbage may get one refusal on top, which
    # closes the connection: nothing is answered after a response that says so.
    assert len(final) <= data.count(b"HTTP/1.") + 1, (data, raw)
    closing = [i for i, r in enumerate(final) if r.headers.get("connection") == "close"]
    assert closing in ([], [len(final) - 1]), (data, raw)
    assert all(r.status in (200, 400, 404, 413, 414, 431, 500, 501) for r in final), raw
    assert get(fuzz_server.port, "/echo").status == 200
