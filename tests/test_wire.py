"""Bytes in, bytes out: the sans-IO wire rules and the chunked decoder, without sockets."""

from __future__ import annotations

import pytest

from asgiserve.http.chunked import ChunkedDecoder
from asgiserve.http.heads import check_raw_head
from asgiserve.http.wire import (
    CHUNKED,
    ProtocolError,
    error_response,
    request_framing,
    response_head,
)

DEFAULTS = b"server: asgiserve\r\ndate: Mon, 23 Nov 2026 12:00:00 GMT\r\n"


def test_response_head_coalesced_body_gets_content_length():
    head = response_head(200, [(b"content-type", b"text/plain")], DEFAULTS, True, False, False, 5)
    assert head.data == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n" + DEFAULTS + b"\r\n"
    )
    assert (head.length, head.chunked, head.keep_alive, head.no_body) == (5, False, True, False)


def test_response_head_streams_chunked_or_close_delimited():
    head = response_head(200, [], DEFAULTS, True, False, False, -1)
    assert head.chunked and b"transfer-encoding: chunked\r\n" in head.data
    head = response_head(200, [], DEFAULTS, True, True, False, -1)  # HTTP/1.0: no chunked coding
    assert not head.chunked and not head.keep_alive and b"connection: close\r\n" in head.data


def test_response_head_app_framing_headers():
    head = response_head(
        200, [(b"Connection", b"close"), (b"content-length", b"3")], DEFAULTS, True, False, False, -1
    )
    assert not head.keep_alive and head.data.count(b"onnection") == 1 and head.length == 3
    head = response_head(
        200, [(b"date", b"yesterday"), (b"server", b"mine")], DEFAULTS, True, False, False, 0
    )
    assert (
        head.data.count(b"date:") == 1 and b"date: yesterday" in head.data and b"asgiserve" not in head.data
    )


@pytest.mark.parametrize("status", [204, 304, 101])
def test_bodyless_statuses(status):
    head = response_head(status, [], DEFAULTS, True, False, False, 10)
    assert head.no_body and b"content-length" not in head.data and b"transfer-encoding" not in head.data


def test_head_request_keeps_declared_length():
    head = response_head(200, [(b"content-length", b"42")], DEFAULTS, True, False, True, 0)
    assert head.no_body and head.length == 42 and b"content-length: 42" in head.data


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"a\r\nset-cookie: evil")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\rb")],
        [(b"x", b"a\x00b")],
        [(b"bad name", b"v")],
        [(b"x\r\ny", b"v")],
        [(b"content-length", b"+5")],
    ],
)
def test_response_splitting_refused(headers):
    with pytest.raises(ValueError):
        response_head(200, headers, DEFAULTS, True, False, False, 0)


def test_error_response_is_complete_json():
    data = error_response(431, 'too "big"', DEFAULTS)
    head, body = data.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head and body == b'{"error":"too \\"big\\""}'
    assert b"content-length: %d" % len(body) in head


@pytest.mark.parametrize(
    ("headers", "version", "expected"),
    [
        ([(b"host", b"h")], "1.1", (0, True, False, False, None)),
        ([(b"host", b"h"), (b"content-length", b"12")], "1.1", (12, True, False, False, None)),
        ([(b"host", b"h"), (b"transfer-encoding", b"Chunked")], "1.1", (CHUNKED, True, False, False, None)),
        ([(b"host", b"h"), (b"connection", b"Keep-Alive, CLOSE")], "1.1", (0, False, False, False, None)),
        ([(b"connection", b"keep-alive")], "1.0", (0, True, False, False, None)),
        ([], "1.0", (0, False, False, False, None)),
        ([(b"host", b"h"), (b"expect", b"100-Continue")], "1.1", (0, True, True, False, None)),
        (
            [(b"host", b"h"), (b"connection", b"upgrade"), (b"upgrade", b"websocket")],
            "1.1",
            (0, False, False, True, None),
        ),
        (
            [(b"host", b"h"), (b"x-request-id", b"abc-1"), (b"x-request-id", b"2")],
            "1.1",
            (0, True, False, False, b"abc-1"),
        ),
    ],
)
def test_request_framing(headers, version, expected):
    assert request_framing(b"GET", version, headers, 100) == expected


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"host", b"h"), (b"content-length", b"101")], 413),
        ([(b"host", b"h"), (b"transfer-encoding", b"gzip, chunked")], 501),
        ([(b"host", b"h"), (b"transfer-encoding", b"chunked, gzip")], 400),
        ([(b"host", b"h"), (b"content-length", b"1"), (b"content-length", b"1")], 400),
        ([(b"host", b"h"), (b"content-length", b"\xd9\xa3")], 400),  # a non-ASCII digit
        ([(b"host", b"h"), (b"host", b"i")], 400),
    ],
)
def test_request_framing_refusals(headers, status):
    with pytest.raises(ProtocolError) as info:
        request_framing(b"POST", "1.1", headers, 100)
    assert info.value.status == status


def test_raw_head_checks():
    check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\nX: b\tc \r\n\r\n")
    for bad in (
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost :a\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        with pytest.raises(ProtocolError):
            check_raw_head(bad)


def test_chunked_decoder_byte_by_byte():
    stream = b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\nT: 1\r\n\r\nNEXT"
    dec = ChunkedDecoder()
    out, rest = [], b""
    for i in range(len(stream)):
        pieces, rest = dec.feed(stream[i : i + 1])
        out += pieces
        if dec.done:
            rest += stream[i + 1 :]
            break
    assert b"".join(out) == b"Wikipedia" and rest == b"NEXT"


@pytest.mark.parametrize("bad", [b"g\r\n", b"0x1\r\n", b" 1\r\nx\r\n", b"1\r\nxY", b"10000000000000000\r\n"])
def test_chunked_decoder_refuses(bad):
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(bad + b"\r\n" * 3)
