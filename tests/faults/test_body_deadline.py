"""A request body that stalls or trickles is cut at its deadline (408, the connection slot freed): 2,100 slow
clients no longer hold every slot, and a probe is served at once while 2,000 of them are connected."""

from __future__ import annotations

import asyncio
import resource
import socket
import time

import pytest

from tests.conftest import start

HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
PROBE = b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
FLAGS = ("--body-timeout", "1", "--body-min-rate", "100", "--no-access-log")


def status_of(data: bytes) -> int:
    return int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0


def raw_call(port: int, *pieces: bytes, gap: float = 0.0, timeout: float = 8) -> tuple[int, float]:
    """Send ``pieces`` ``gap`` seconds apart (stopping if the server answers), then read the answer: its
    status (0: none) and the seconds from the first byte to the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        t0 = time.monotonic()
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                break
            sock.settimeout(gap or timeout)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            return status_of(data), time.monotonic() - t0
        sock.settimeout(timeout)
        data = sock.recv(65536)
        return status_of(data), time.monotonic() - t0


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_a_stalled_body_is_answered_408_at_its_deadline(tmp_path, runner):
    server = start(runner, "tests.faults.apps:Uploads", tmp_path, *FLAGS)
    try:
        status, took = raw_call(server.port, HEAD + b'{"text": "')
        assert status == 408 and 0.45 < took < 2.0  # 1 s without a byte, give or take the 0.5 s tick
    finally:
        server.stop()


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_a_trickling_body_is_answered_408_under_the_minimum_rate(tmp_path, runner):
    server = start(runner, "tests.faults.apps:Uploads", tmp_path, *FLAGS)
    try:
        # 5 bytes a second, never idle for long: without the minimum rate it would hold its slot for 200 s.
        status, took = raw_call(server.port, HEAD, *[b" "] * 25, gap=0.2, timeout=3)
        assert status == 408 and took < 2.5
        # A body sent at its own pace above the minimum rate is served.
        body = b'{"text": "' + b"x" * 988 + b'"}'
        status, _ = raw_call(server.port, HEAD, *[body[i : i + 100] for i in range(0, 1000, 100)], gap=0.1)
        assert status == 200
    finally:
        server.stop()


async def slow_clients(port: int, count: int, writers: list[asyncio.StreamWriter]) -> list[asyncio.StreamReader]:
    """``count`` connections that each sent a head and one byte of the body, then stalled."""
    readers = []
    for start_at in range(0, count, 100):
        batch = range(start_at, min(count, start_at + 100))
        opened = await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port) for _ in batch])
        for reader, writer in opened:
            writer.write(HEAD + b"{")
            readers.append(reader)
            writers.append(writer)
    return readers


async def answer(reader: asyncio.StreamReader, t0: float) -> tuple[int, float]:
    try:
        data = await reader.read(65536)
    except ConnectionError:
        data = b""
    return status_of(data), time.monotonic() - t0


async def probe(port: int) -> tuple[int, float]:
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(PROBE)
    data = await reader.read(65536)
    writer.close()
    return status_of(data), time.monotonic() - t0


def test_two_thousand_slow_clients_do_not_lock_out_a_probe(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:  # 2,100 connections on each side; the server process inherits the limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    # Deadlines 2 s out: the probes run before the second wave's expire (2,000 at one tick take the loop
    # for about 0.1 s; slow clients do not come in step like this outside a test).
    flags = ("--body-timeout", "2", "--no-access-log", "--max-connections", "2048")
    server = start("asgiserve", "tests.faults.apps:Uploads", tmp_path, *flags)

    writers: list[asyncio.StreamWriter] = []

    async def go() -> None:
        t0 = time.monotonic()
        first = await slow_clients(server.port, 2100, writers)  # more than the 2,048 connection slots
        verdicts = await asyncio.wait_for(asyncio.gather(*[answer(r, t0) for r in first]), 10)
        statuses = [s for s, _ in verdicts]
        # Each got a slot and was cut at its deadline, or found them all taken; none is left holding one.
        assert statuses.count(408) >= 2000 and statuses.count(408) + statuses.count(503) == 2100
        assert max(took for s, took in verdicts if s == 408) < 6
        second = await slow_clients(server.port, 2000, writers)
        await asyncio.sleep(0.3)  # all 2,000 accepted and their heads read
        probes = []
        for _ in range(10):
            probes.append(await probe(server.port))
            await asyncio.sleep(0.05)
        assert all(s == 200 for s, _ in probes), probes
        assert max(took for _, took in probes) < 0.1, probes
        assert not any(r.at_eof() for r in second)  # the probes were served while all 2,000 were connected
        for w in writers:
            w.close()
        await asyncio.gather(*[w.wait_closed() for w in writers], return_exceptions=True)

    try:
        asyncio.run(go())
    finally:
        server.stop()
