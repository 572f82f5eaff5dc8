"""asgiserve's server against uvicorn (httptools, uvloop) on the same service, one worker each.

    python benchmarks/server_vs_uvicorn.py [--duration 5] [--connections 64] [--rounds 1]

The server is pinned to CPU 0 and wrk to CPU 1 (``taskset``); each round runs both servers back to back
on a JSON api call (async, JSON in and out), a sync api call (thread pool) and ``GET /livez``, and the
closing lines give requests per second for both and the ratio (best of the rounds). A bare uvloop +
httptools protocol answering fixed bytes is measured too, as the ceiling for Python here. Because a shared
machine makes req/s noisy, the server's CPU time per request (from /proc, all its threads) is reported
too: it does not depend on how long the server waited for a CPU. Needs ``wrk`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import asgiserve  # noqa: E402


@asgiserve.service(traffic={"timeout": 10})
class Bench:
    """A JSON-in, JSON-out service shaped like an inference api."""

    @asgiserve.api
    async def predict(self, text: str, top_k: int = 2) -> dict[str, Any]:
        """Async api: a fixed classification."""
        return {"labels": ["positive", "neutral"][:top_k], "scores": [0.93, 0.07][:top_k], "chars": len(text)}

    @asgiserve.api
    def summarize(self, text: str) -> str:
        """Sync api: runs in the service's thread pool."""
        return text.split(". ")[0]


app = asgiserve.to_asgi(Bench)

CASES = {
    "POST /predict (async JSON api)": ("/predict", '{"text": "The movie was great. Loved it.", "top_k": 2}'),
    "POST /summarize (sync api)": ("/summarize", '{"text": "One sentence. Two sentences."}'),
    "GET /livez": ("/livez", None),
}


def free_port() -> int:
    """An unused port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_server(port: int) -> None:
    """A uvloop + httptools protocol answering every request with the same fixed bytes."""
    import asyncio

    import httptools
    import uvloop

    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(reply)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def server_cmd(kind: str, port: int) -> list[str]:
    """The command line starting ``kind`` on ``port``, pinned to CPU 0."""
    py = [sys.executable, "-m"]
    if kind == "bare":
        return ["taskset", "-c", "0", sys.executable, __file__, "--bare-server", str(port)]
    if kind == "asgiserve":
        cmd = [*py, "asgiserve", "server_vs_uvicorn:Bench", "--app-dir", str(HERE), "--no-access-log"]
        cmd += ["--port", str(port), "--log-level", "warning"]
    else:
        cmd = [*py, "uvicorn", "server_vs_uvicorn:app", "--app-dir", str(HERE), "--no-access-log"]
        cmd += ["--port", str(port), "--log-level", "warning", "--http", "httptools", "--loop", "uvloop"]
    return ["taskset", "-c", "0", *cmd]


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll /readyz until the server answers 200 (the bare server answers 200 to anything)."""
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Result = tuple[float, str, float]  # req/s, p99, server CPU microseconds per request


def wrk(port: int, path: str, body: str | None, duration: int, connections: int, pid: int) -> Result:
    """Requests per second, p99 latency and server CPU per request from one pinned wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if body is not None:
            f.write(
                f'wrk.method = "POST"\nwrk.body = {body!r}\nwrk.headers["Content-Type"] = "application/json"\n'
            )
        f.write(
            'done = function(summary, latency, requests)\n  io.write(string.format("p99 %.2fms\\n", latency:percentile(99) / 1000))\nend\n'
        )
        script = f.name
    try:
        cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script]
        cpu0 = cpu_seconds(pid)
        out = subprocess.run([*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
        cpu = cpu_seconds(pid) - cpu0
    finally:
        os.unlink(script)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p99 = re.search(r"p99 ([\d.]+ms)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rps is None or bad is not None:
        raise RuntimeError(f"wrk failed or got errors:\n{out}")
    per_request = cpu / int(total.group(1)) * 1e6 if total else float("nan")
    return float(rps.group(1)), p99.group(1) if p99 else "?", per_request


def measure(kind: str, duration: int, connections: int) -> dict[str, Result]:
    """Run every case against a fresh ``kind`` server."""
    port = free_port()
    proc = subprocess.Popen(
        server_cmd(kind, port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_up(port, proc)
        for path, body in CASES.values():  # warm up
            wrk(port, path, body, 1, connections, proc.pid)
        return {
            name: wrk(port, path, body, duration, connections, proc.pid)
            for name, (path, body) in CASES.items()
        }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    """Run the comparison and print a table with the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    best: dict[str, dict[str, Result]] = {"asgiserve": {}, "uvicorn": {}, "bare": {}}
    cpu: dict[str, dict[str, float]] = {"asgiserve": {}, "uvicorn": {}, "bare": {}}
    for _ in range(args.rounds):
        for kind in ("asgiserve", "uvicorn", "bare"):
            for name, result in measure(kind, args.duration, args.connections).items():
                if name not in best[kind] or result[0] > best[kind][name][0]:
                    best[kind][name] = result
                cpu[kind][name] = min(cpu[kind].get(name, float("inf")), result[2])
    print(
        f"{'case':32} {'req/s ours':>10} {'uvicorn':>8} {'ratio':>6} {'CPU us/req ours':>16} {'uvicorn':>8} {'ratio':>6}"
    )
    for name in CASES:
        ours, theirs = best["asgiserve"][name], best["uvicorn"][name]
        c_ours, c_theirs = cpu["asgiserve"][name], cpu["uvicorn"][name]
        print(
            f"{name:32} {ours[0]:10.0f} {theirs[0]:8.0f} {ours[0] / theirs[0]:6.2f}"
            f" {c_ours:16.1f} {c_theirs:8.1f} {c_theirs / c_ours:6.2f}   p99 {ours[1]} / {theirs[1]}"
        )
    print("bare uvloop+httptools fixed bytes, and asgiserve as a share of it:")
    for name in CASES:
        bare, ours = best["bare"][name], best["asgiserve"][name]
        print(f"  {name:32} {bare[0]:10.0f} req/s   asgiserve at {ours[0] / bare[0]:4.0%}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare-server"]:
        bare_server(int(sys.argv[2]))
    else:
        sys.exit(main())
