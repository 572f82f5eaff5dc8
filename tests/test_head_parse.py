"""The one-pass head parser of ``--http h11`` against h11 itself: the same heads parsed, the same refused.

The reference is h11's server-side parser behind the byte-level checks it needs to be as strict as llhttp
(bare LF, lone CR, obs-fold, control characters, repeated Content-Length, Transfer-Encoding codings), as
the h11 protocol parsed heads before ``parse_head``, and like llhttp taking runs of spaces between the
request line's parts (h11 takes one). Accepted heads must give the same method, target, version and header
list; refused heads the same status.
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgiserve.http.heads import parse_head
from asgiserve.http.wire import ProtocolError, check_transfer_encoding
from tests.test_fuzz import PIECES, SEEDS, mutate, mutation
from tests.test_protocol import HOSTILE

_BAD_EOL = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_SPACES = re.compile(rb"(?<=[^ ])  +(?=[^ ])")
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")

Parsed = tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]


def reference(head: bytes) -> Parsed | int:
    """h11 behind the byte-level checks: the parse, or the status of the refusal."""
    try:
        if _BAD_EOL.search(head):
            raise ProtocolError("bare LF or lone CR")
        cls = tes = 0
        for line in head.split(b"\r\n")[1:-2]:
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("obs-fold")
            m = _FIELD.fullmatch(line)
            if m is None:
                raise ProtocolError("header line")
            name = m.group(1).lower()
            if name == b"content-length":
                cls += 1
                if cls > 1 or not m.group(2).isdigit():
                    raise ProtocolError("content-length")
            elif name == b"transfer-encoding":
                tes += 1
                if tes > 1:
                    raise ProtocolError("transfer-encoding")
                check_transfer_encoding(m.group(2))
        end = head.find(b"\r\n")
        head = _SPACES.sub(b" ", head[:end]) + head[end:]  # llhttp's request-line whitespace
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        conn.receive_data(head)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc)) from None
        assert isinstance(event, h11.Request)
        return event.method, event.target, event.http_version.decode(), list(event.headers)
    except ProtocolError as exc:
        return exc.status


def ours(head: bytes) -> Parsed | int:
    try:
        return parse_head(head)
    except ProtocolError as exc:
        return exc.status


def complete_head(data: bytes) -> bytes | None:
    """The first complete head in ``data``, as the protocol hands it over (leading empty lines dropped)."""
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    return data[: end + 4] if end >= 0 else None


LONG = b"1" * 25  # a Content-Length over h11's 20 digits
TRICKY = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \t b\tc \t\r\nY:\r\nZ:   \r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\r\n\r\n",  # obs-text
    b"GET /a?b=%20 HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: a\r\n\r\n",  # a token, refused later by the method table
    b"GET / HTTP/2.0\r\n\r\n",  # h11 takes any d.d; the framing rules refuse it later
    b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/11\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0cb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1fb\r\n\r\n",
    b"GET / HTTP/1.1\r\nX\x01: b\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",  # h11 refuses two Hosts on any version
    b"GET / HTTP/1.0\r\nHOST: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n",
    # Which rule decides first matters where one says 501 and another 400:
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",  # no Host
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nX : y\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nX : y\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST /  HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" % LONG,
    b"POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % LONG,  # too long, and no Host
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"1" * 20 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\t\r\n\r\n",
]


CASES = [h for h in map(complete_head, [*TRICKY, *(data for data, _ in HOSTILE.values()), *SEEDS]) if h]


@pytest.mark.parametrize("head", CASES)
def test_same_verdict_as_h11(head):
    assert ours(head) == reference(head)


def test_parsed_values():
    head = b"POST /p?q=1 HTTP/1.1\r\nHost:  a \r\nX-Long: b \t c\t\r\nContent-Length: 3\r\n\r\n"
    assert parse_head(head) == (
        b"POST",
        b"/p?q=1",
        "1.1",
        [(b"host", b"a"), (b"x-long", b"b \t c"), (b"content-length", b"3")],
    )


@settings(max_examples=3000, deadline=None)
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=5))
def test_mutated_heads_same_verdict_as_h11(seed, ops):
    head = complete_head(mutate(seed, ops))
    if head is not None:
        assert ours(head) == reference(head)


@settings(max_examples=2000, deadline=None)
@given(pieces=st.lists(st.sampled_from([*PIECES, b"Host: a\r\n", b"GET / ", b"X-Y: z\r\n"]), max_size=12))
def test_assembled_heads_same_verdict_as_h11(pieces):
    head = complete_head(b"GET / HTTP/1.1\r\n" + b"".join(pieces) + b"\r\n\r\n")
    assert head is not None
    assert ours(head) == reference(head)
