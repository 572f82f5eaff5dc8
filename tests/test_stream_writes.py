"""How a direct stream's pieces reach the transport: a lone stream writes each piece as it comes; beside
other streams, the pieces of a loop pass or two go out in one write (one system call instead of several),
with the same bytes on the wire and the last chunk after every held piece."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

import asgiserve
from tests.memory import PARSERS, connect
from tests.rawhttp import parse_responses

TOKENS = 24


@asgiserve.service(name="Streams")
class Streams:
    """One streaming api, a loop pass between tokens, as a model's token loop gives one."""

    @asgiserve.api
    async def tokens(self, n: int) -> AsyncGenerator[str, None]:
        """``n`` numbered tokens."""
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i} "


def _request(n: int) -> bytes:
    body = b'{"n": %d}' % n
    return b"POST /tokens HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def _count_writes(conn) -> list[bytes]:
    writes: list[bytes] = []
    write = conn.transport.write

    def counted(data):
        writes.append(bytes(data))
        write(data)

    conn.transport.write = counted
    return writes


def _expected_body(n: int) -> bytes:
    return b"".join(f"t{i} ".encode() for i in range(n))


@pytest.mark.parametrize("kind", PARSERS)
def test_a_lone_stream_writes_each_piece_at_once(kind):
    conn = connect(kind, asgiserve.to_asgi(Streams))
    try:
        writes = _count_writes(conn)
        (r,) = conn.exchange(_request(TOKENS)).responses
        assert r.status == 200 and r.complete and r.body == _expected_body(TOKENS)
        # the head with the first token, one write per further token, the last chunk
        assert len(writes) == TOKENS + 1
    finally:
        conn.server.close()


@pytest.mark.parametrize("kind", PARSERS)
def test_streams_side_by_side_write_several_pieces_at_a_time(kind):
    first = connect(kind, asgiserve.to_asgi(Streams))
    server = first.server
    try:
        conns = [first, server.connect(), server.connect()]
        writes = [_count_writes(c) for c in conns]
        for c in conns:
            c.send(_request(TOKENS), settle=False)
        server.run()
        for c, w in zip(conns, writes, strict=True):
            (r,) = parse_responses(c.raw)
            assert r.status == 200 and r.complete and r.body == _expected_body(TOKENS)
            assert c.raw.endswith(b"0\r\n\r\n") and not c.closed
            assert len(w) <= 1 + TOKENS // 2 + 1, len(w)  # the head, two tokens a write, the end
        # once the others ended, a stream is alone again and writes at once
        writes = _count_writes(first)
        first.seen = len(first.raw)
        (r,) = first.exchange(_request(4)).responses
        assert r.body == _expected_body(4) and len(writes) == 4 + 1
    finally:
        server.close()


@pytest.mark.parametrize("kind", PARSERS)
def test_held_pieces_of_a_client_that_left_are_dropped_and_the_others_go_on(kind):
    first = connect(kind, asgiserve.to_asgi(Streams))
    server = first.server
    try:
        other = server.connect()
        first.send(_request(1000), settle=False)
        other.send(_request(TOKENS), settle=False)
        server.run(lambda: len(first.raw) > 200)
        first.lose()
        server.run()
        (r,) = parse_responses(other.raw)
        assert r.complete and r.body == _expected_body(TOKENS)
        assert server.state.streams == 0
    finally:
        server.close()
