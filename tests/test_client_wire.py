"""The client's sans-IO core, bytes in and state out: framing, interim responses, keep-alive rules."""

from __future__ import annotations

import pytest

from asgiserve.client.endpoints import disposition_filename
from asgiserve.client.wire import RemoteProtocolError, Response, ServerDisconnected, encode_head


def parse(data: bytes, *, head: bool = False, split: int | None = None) -> Response:
    resp = Response(head)
    if split is None:
        resp.feed(data)
    else:  # byte by byte (or in small pieces) must give the same result
        for i in range(0, len(data), split):
            resp.feed(data[i : i + split])
    return resp


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


@pytest.mark.parametrize("split", [None, 1, 7])
def test_content_length_and_chunked(split):
    resp = parse(OK, split=split)
    assert (resp.status, resp.complete, resp.keep_alive, resp.take_body()) == (200, True, True, b"hello")
    assert resp.headers["content-type"] == "text/plain"
    resp = parse(CHUNKED, split=split)
    assert resp.complete and resp.keep_alive and resp.take_body() == b"hello world"


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"NOTHTTP 200\r\n\r\n",
    ],
)
def test_ambiguous_or_broken_framing_is_an_error(bad):
    with pytest.raises(RemoteProtocolError):
        parse(bad)


def test_interim_responses_are_skipped():
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
    resp = parse(data)
    assert resp.status == 200 and resp.take_body() == b"hello" and "link" not in resp.headers


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status):
    resp = parse(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    assert resp.complete and resp.status == status and resp.take_body() == b""


def test_head_response_has_no_body_and_is_not_reused():
    resp = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", head=True)
    assert resp.complete and resp.status == 200 and resp.take_body() == b""
    assert resp.headers["content-length"] == "100" and not resp.keep_alive


def test_keep_alive_rules():
    assert not parse(OK.replace(b"Content-Type", b"Connection: close\r\nContent-Type")).keep_alive
    assert not parse(OK.replace(b"HTTP/1.1", b"HTTP/1.0")).keep_alive
    # Extra bytes after a complete response make the connection's framing ambiguous.
    resp = parse(OK + b"HTTP/1.1 200 OK\r\n")
    assert resp.complete and resp.take_body() == b"hello" and not resp.keep_alive and resp.extra
    resp = parse(OK + b"garbage")
    assert resp.complete and not resp.keep_alive
    resp = parse(OK)
    resp.feed(b"late")
    assert not resp.keep_alive


def test_eof_delimited_body():
    resp = parse(b"HTTP/1.1 200 OK\r\n\r\npart one ")
    assert not resp.complete and not resp.keep_alive
    resp.feed(b"part two")
    resp.feed_eof()
    assert resp.complete and resp.take_body() == b"part one part two" and not resp.keep_alive


def test_cut_short_responses():
    resp = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
    with pytest.raises(ServerDisconnected, match="before the response was complete"):
        resp.feed_eof()
    with pytest.raises(ServerDisconnected, match="without sending a response"):
        Response().feed_eof()


def test_repeated_headers_are_joined():
    resp = parse(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n")
    assert resp.headers["x-a"] == "1, 2"


def test_encode_head_refuses_injection():
    head = encode_head("POST", "/x", "h:1", [("Authorization", "Bearer t")])
    assert head == b"POST /x HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t\r\n"
    with pytest.raises(ValueError):
        encode_head("GET", "/x", "h", [("X", "a\r\nInjected: 1")])
    with pytest.raises(ValueError):
        encode_head("GET", "/x HTTP/1.1\r\nX: y", "h", [])


# -- fuzzing: the parsers fail only in their documented ways ----------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asgiserve.client.endpoints import Endpoint  # noqa: E402
from asgiserve.errors import BadRequest  # noqa: E402
from asgiserve.multipart import parse_form  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_response_parser_fuzz(data, split):
    resp = Response()
    try:
        for i in range(0, len(data), split):
            resp.feed(data[i : i + split])
        resp.feed_eof()
    except (RemoteProtocolError, ServerDisconnected):
        return
    assert resp.complete and resp.status >= 200


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CHUNKED)), max_size=6))
def test_any_split_parses_the_same(cuts):
    resp = Response()
    prev = 0
    for cut in [*sorted(set(cuts)), len(CHUNKED)]:
        resp.feed(CHUNKED[prev:cut])
        prev = cut
    assert resp.complete and resp.keep_alive and resp.take_body() == b"hello world"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_multipart_parser_fuzz(body):
    try:
        parts = parse_form(b"--xx\r\n" + body, b"multipart/form-data; boundary=xx")
    except BadRequest:
        return
    assert all(isinstance(p.name, str) for p in parts)


FORM_ROUTE = {
    "name": "f",
    "route": "/f",
    "input": {"properties": {"doc": {"type": "file"}, "meta": {"type": "object"}}, "required": ["doc"]},
    "output": {"type": "string"},
}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500), st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3))
def test_client_multipart_round_trips_through_the_server_parser(data, meta):
    ep = Endpoint(FORM_ROUTE, "h", "", [])
    request = ep.encode({"doc": data, "meta": meta})
    head, _, body = request.partition(b"\r\n\r\n")
    ctype = next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Type:"))
    parts = parse_form(body, ctype.partition(b":")[2].strip())
    assert (parts[0].name, parts[0].data) == ("doc", data)
    import msgspec

    assert parts[1].name == "meta" and msgspec.json.decode(parts[1].data) == meta


@pytest.mark.parametrize(
    "header, name",
    [
        ('attachment; filename="big.bin"', "big.bin"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ('attachment; filename="a \\"q\\".txt"', 'a "q".txt'),
        # RFC 8187: the extended form wins over the ASCII fallback and is percent-decoded.
        (
            "attachment; filename=\"caf? .txt\"; filename*=UTF-8''caf%C3%A9%20%E6%97%A5.txt",
            "caf\u00e9 \u65e5.txt",
        ),
        ("attachment; filename*=utf-8''%E2%82%AC.txt; filename=\"EUR.txt\"", "\u20ac.txt"),
        ("attachment; filename*=iso-8859-1'en'%E9t%E9.txt", "\u00e9t\u00e9.txt"),
        # Only the last path component: a server never picks a folder.
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ('attachment; filename="..\\\\..\\\\boot.ini"', "boot.ini"),
        ('attachment; filename="/tmp/x/y.txt"', "y.txt"),
        ('attachment; filename=".."', ""),
        ("attachment; filename*=UTF-8''%2E%2E", ""),
        ("attachment", ""),
        ("", ""),
    ],
)
def test_content_disposition_file_name(header, name):
    assert disposition_filename(header) == name
