"""Client benchmark: asgiserve's clients against httpx, requests, urllib3 and aiohttp on one fixed server.

Every client makes the same api call (``POST /add`` with a JSON object, a JSON number back) against
one uvicorn process serving the same asgiserve app: sync clients sequentially, async clients with
``--concurrency`` tasks. The server and the clients are pinned to different CPUs with ``taskset`` when
there are two or more, so that the client's own cost shows. Each client gets a warm-up, then the best of
``--repeat`` timed rounds is kept (shared machines are noisy).

    python benchmarks/clients.py [--calls 5000] [--concurrency 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asgiserve

ROOT = Path(__file__).resolve().parent.parent


@asgiserve.service
class Bench:
    @asgiserve.api
    async def add(self, a: int, b: int = 0) -> int:
        return a + b


app = asgiserve.to_asgi(Bench)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, cpu: str | None) -> subprocess.Popen[bytes]:
    """uvicorn with httptools and uvloop serving ``app``, pinned to ``cpu`` when given."""
    cmd = [sys.executable, "-m", "uvicorn", "benchmarks.clients:app", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning", "--http", "httptools", "--loop", "uvloop"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


# -- sync clients: each returns a function making n calls -------------------------------------------


def run_asgiserve_sync(url: str, n: int) -> float:
    with asgiserve.SyncHTTPClient(url) as client:
        add = client.add
        for i in range(50):
            add(a=i, b=1)
        t0 = time.perf_counter()
        for i in range(n):
            assert add(a=i, b=1) == i + 1
        return time.perf_counter() - t0


def run_httpx_sync(url: str, n: int) -> float:
    import httpx

    with httpx.Client(base_url=url) as client:
        for i in range(50):
            client.post("/add", json={"a": i, "b": 1}).json()
        t0 = time.perf_counter()
        for i in range(n):
            assert client.post("/add", json={"a": i, "b": 1}).json() == i + 1
        return time.perf_counter() - t0


def run_requests(url: str, n: int) -> float:
    import requests

    with requests.Session() as session:
        for i in range(50):
            session.post(url + "/add", json={"a": i, "b": 1}).json()
        t0 = time.perf_counter()
        for i in range(n):
            assert session.post(url + "/add", json={"a": i, "b": 1}).json() == i + 1
        return time.perf_counter() - t0


def run_urllib3(url: str, n: int) -> float:
    import json

    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", int(url.rsplit(":", 1)[1]), maxsize=1)
    headers = {"Content-Type": "application/json"}
    for i in range(50):
        pool.request("POST", "/add", body=json.dumps({"a": i, "b": 1}), headers=headers)
    t0 = time.perf_counter()
    for i in range(n):
        r = pool.request("POST", "/add", body=json.dumps({"a": i, "b": 1}), headers=headers)
        assert json.loads(r.data) == i + 1
    elapsed = time.perf_counter() - t0
    pool.close()
    return elapsed


# -- async clients ---------------------------------------------------------------------------------


async def _spread(n: int, concurrency: int, call: Callable[[int], Any]) -> float:
    async def worker(start: int) -> None:
        for i in range(start, n, concurrency):
            assert await call(i) == i + 1

    await asyncio.gather(*(worker(k) for k in range(concurrency)))  # warm the pool up
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return time.perf_counter() - t0


async def run_asgiserve_async(url: str, n: int, concurrency: int) -> float:
    async with asgiserve.AsyncHTTPClient(url) as client:
        add = client.add
        return await _spread(n, concurrency, lambda i: add(a=i, b=1))


async def run_httpx_async(url: str, n: int, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def call(i: int) -> Any:
            return (await client.post("/add", json={"a": i, "b": 1})).json()

        return await _spread(n, concurrency, call)


async def run_aiohttp(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def call(i: int) -> Any:
            async with session.post("/add", json={"a": i, "b": 1}) as r:
                return await r.json()

        return await _spread(n, concurrency, call)


def _uvloop_run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def run_raw_socket(url: str, n: int) -> float:
    """The floor for a Python client: one socket, a pre-encoded request, a minimal Content-Length read."""
    host, port = url.removeprefix("http://").split(":")
    body = b'{"a":1,"b":2}'
    request = (
        b"POST /add HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), len(body), body)
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            sock.sendall(request)
            data = b""
            while True:
                data += sock.recv(65536)
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    i = head.lower().find(b"content-length:")
                    length = int(head[i + 15 :].split(b"\r\n", 1)[0])
                    if len(rest) >= length:
                        break
            assert rest[:length] == b"3"
        return time.perf_counter() - t0


# (harness row name, group is sync, runner taking (url, n, concurrency))
CLIENTS: list[tuple[str, bool, Callable[[str, int, int], float]]] = [
    ("SyncHTTPClient", True, lambda url, n, c: run_asgiserve_sync(url, n)),
    ("httpx.Client", True, lambda url, n, c: run_httpx_sync(url, n)),
    ("requests.Session", True, lambda url, n, c: run_requests(url, n)),
    ("urllib3", True, lambda url, n, c: run_urllib3(url, n)),
    ("raw socket", True, lambda url, n, c: run_raw_socket(url, n)),
    ("AsyncHTTPClient", False, lambda url, n, c: _uvloop_run(run_asgiserve_async(url, n, c))),
    ("httpx.AsyncClient", False, lambda url, n, c: _uvloop_run(run_httpx_async(url, n, c))),
    ("aiohttp", False, lambda url, n, c: _uvloop_run(run_aiohttp(url, n, c))),
]


def measure(n: int, concurrency: int, repeat: int) -> dict[str, float]:
    """Calls per second of every client (best of ``repeat`` interleaved rounds) against one pinned server."""
    two_cpus = (os.cpu_count() or 1) >= 2
    old_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    port = _free_port()
    server = start_server(port, "0" if two_cpus else None)
    if two_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    url = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {name: [] for name, _, _ in CLIENTS}
    try:
        for _ in range(repeat):
            # Rounds interleave the clients so that a burst of load elsewhere hits them all alike.
            for name, _, run in CLIENTS:
                times[name].append(run(url, n, concurrency))
    finally:
        server.terminate()
        server.wait(10)
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
    return {name: n / min(ts) for name, ts in times.items()}


def run(quick: bool) -> list[dict[str, Any]]:
    """The suite interface of ``benchmarks/run.py``: one row per client, in calls per second."""
    from benchmarks.harness import CLIENTS_ASYNC, CLIENTS_SYNC

    n = 2000 if quick else 5000
    rates = measure(n, 32, 1 if quick else 3)
    rows = []
    for name, is_sync, _ in CLIENTS:
        rows.append(
            {
                "group": CLIENTS_SYNC if is_sync else CLIENTS_ASYNC,
                "name": name,
                "value": rates[name],
                "unit": "calls/s",
                "subject": name in ("SyncHTTPClient", "AsyncHTTPClient"),
                "extra": {"us/call": 1e6 / rates[name]},
            }
        )
    return rows


def main() -> None:
    """Run every client, print calls per second and the ratios the design asks for."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates = measure(args.calls, args.concurrency, args.repeat)
    for name, rate in rates.items():
        print(f"  {name:<20} {rate:>9.0f} calls/s  {1e6 / rate:>7.1f} us/call")
    print("\nratios (asgiserve / other):")
    for name in ("httpx.Client", "requests.Session", "urllib3", "raw socket"):
        print(f"  SyncHTTPClient / {name:<18} {rates['SyncHTTPClient'] / rates[name]:5.2f}x")
    for name in ("httpx.AsyncClient", "aiohttp"):
        print(f"  AsyncHTTPClient / {name:<17} {rates['AsyncHTTPClient'] / rates[name]:5.2f}x")


if __name__ == "__main__":
    main()
