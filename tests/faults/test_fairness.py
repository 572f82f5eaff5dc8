"""A stream whose generator never awaits does not starve the other connections (asgiserve's own server).

While one client reads a 1.5 s stream from a generator that yields without awaiting, a probe asks
``/livez`` over and over on another connection: every probe must be answered while the stream runs, each
well within a slice of the stream's length (the stream gives the loop a turn every couple of ms).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.conftest import start

STREAM_SECONDS = 1.5
PROBE_LIMIT = 0.4  # seconds: a probe waiting for the stream to end would take up to STREAM_SECONDS


def read_stream(port: int, out: dict[str, object]) -> None:
    """POST /flood and read the whole chunked response as fast as it comes."""
    body = b'{"seconds": %.1f}' % STREAM_SECONDS
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /flood HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        out["started"] = time.monotonic()
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            got = sock.recv(1 << 20)
            if not got:
                break
            data += got
        out["ended"] = time.monotonic()
        out["data"] = bytes(data)


def probe(port: int) -> float:
    """Seconds for one GET /livez on a new connection."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        reply = b""
        while True:
            got = sock.recv(4096)
            if not got:
                break
            reply += got
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    return time.monotonic() - t0


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_a_greedy_stream_leaves_turns_for_other_connections(tmp_path, runner):
    server = start(runner, "tests.apps.greedy:Greedy", tmp_path)
    try:
        result: dict[str, object] = {}
        reader = threading.Thread(target=read_stream, args=(server.port, result))
        reader.start()
        while "started" not in result:
            time.sleep(0.005)
        time.sleep(0.1)  # the stream is under way
        during: list[float] = []
        while reader.is_alive():
            sent = time.monotonic()
            took = probe(server.port)
            if reader.is_alive() or sent + took < result.get("ended", float("inf")):  # type: ignore[operator]
                during.append(took)
            time.sleep(0.02)
        reader.join()
        data = result["data"]
        assert isinstance(data, bytes) and data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n0\r\n\r\n")
        tokens = data.split(b"\r\n\r\n", 1)[1].count(b"\r\nx\r\n")
        assert tokens > 1000, tokens  # the generator really ran flat out
        assert len(during) >= 3, during  # probes answered while the stream was still running
        assert max(during) < PROBE_LIMIT, during
    finally:
        server.stop()
