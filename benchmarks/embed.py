"""The figures of the README's "Embedding asgiserve" section: what each embedded form costs to start, and a
test client's call against the same call over a socket.

    python benchmarks/embed.py            # about 30 s
    python benchmarks/embed.py --calls 2000 --rounds 5

Start-up: each form in a fresh interpreter (``import asgiserve`` and the service, then the form until it
answers), the median of ``--starts`` runs. Calls: the benchmark service's ``POST /predict`` (an async
api, the direct path) and ``predict_sync`` (a sync api, run in the thread pool), sequential calls from a
``SyncHTTPClient`` to a server process on a loopback socket, from a ``TestClient`` and an
``AsyncTestClient`` in process; rounds interleaved, medians. Wall time is what a test waits. CPU time is
what the call costs both ends: for a test client, this whole process (every thread: the client's loop
thread, the server's thread pool); for the socket, the calling thread (the blocking client has no other)
plus every thread of the server process, from the scheduler's nanosecond counts (``/proc/PID/task/*/
schedstat``: ``/proc/PID/stat`` counts in clock ticks, 10 ms, too coarse for a round of calls).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "benchmarks" / "apps"
sys.path[:0] = [str(ROOT), str(APPS)]

_FORMS = {
    "serve(..., blocking=False) until wait_until_ready()": (
        "s = asgiserve.serve(Predict, port=0)\ns.wait_until_ready(30)\nt2 = time.perf_counter()\ns.stop()\n"
    ),
    "await Server(...).serve() until started": (
        "import asyncio\n"
        "async def main():\n"
        "    s = asgiserve.Server(Predict, port=0)\n"
        "    task = asyncio.create_task(s.serve())\n"
        "    await s.started.wait()\n"
        "    t = time.perf_counter()\n"
        "    await s.shutdown()\n"
        "    await task\n"
        "    return t\n"
        "t2 = asyncio.run(main())\n"
    ),
    "with TestClient(...) entered (schema read)": (
        "from asgiserve.testing import TestClient\n"
        "with TestClient(Predict) as c:\n"
        "    t2 = time.perf_counter()\n"
    ),
}
_PRELUDE = (
    "import time\nt0 = time.perf_counter()\nimport asgiserve\nfrom asgiserve_svc import Predict\n"
    "t1 = time.perf_counter()\n"
)


def _starts(runs: int) -> dict[str, tuple[float, float]]:
    """Median (import, start) seconds of each form, each run in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(APPS)])}
    out: dict[str, tuple[float, float]] = {}
    for name, body in _FORMS.items():
        imports, starts = [], []
        for _ in range(runs):
            code = _PRELUDE + body + "print(t1 - t0, t2 - t1)\n"
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            a, b = (float(x) for x in done.stdout.split())
            imports.append(a)
            starts.append(b)
        out[name] = (statistics.median(imports), statistics.median(starts))
    return out


def _cpu(pid: int) -> float:
    """Seconds of CPU the process ``pid`` has used, all its threads, kernel time included."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            continue
    return total / 1e9


def _measure(call: Callable[[], object], n: int, server_pid: int | None) -> tuple[float, float]:
    """(wall, cpu) microseconds per call: with ``server_pid``, this thread's CPU and the server's, else
    this process's."""
    clock = time.thread_time if server_pid else time.process_time
    w, c = time.perf_counter(), clock()
    s = _cpu(server_pid) if server_pid else 0.0
    for _ in range(n):
        call()
    wall = (time.perf_counter() - w) / n * 1e6
    cpu = (clock() - c + ((_cpu(server_pid) - s) if server_pid else 0.0)) / n * 1e6
    return wall, cpu


async def _ameasure(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        await call()
    return (time.perf_counter() - w) / n * 1e6, (time.process_time() - c) / n * 1e6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _calls(n: int, rounds: int) -> dict[str, dict[str, tuple[float, float]]]:
    import uvloop
    from asgiserve_svc import Predict

    import asgiserve
    from asgiserve.testing import AsyncTestClient, TestClient

    port = _free_port()
    cmd = [sys.executable, "-m", "asgiserve", "asgiserve_svc:Predict", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(APPS)])}
    proc = subprocess.Popen(cmd, env=env)
    apis = {"POST /predict (async api)": "predict", "POST /predict_sync (sync api)": "predict_sync"}
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {a: {} for a in apis}
    try:
        sock = asgiserve.SyncHTTPClient(f"http://127.0.0.1:{port}", server_ready_timeout=30)
        local = TestClient(Predict).__enter__()

        async def async_round(api: str) -> tuple[float, float]:
            async with AsyncTestClient(Predict) as client:
                method = getattr(client, api)
                for _ in range(n // 10):
                    await method(text="hello world")
                return await _ameasure(lambda: method(text="hello world"), n)

        for _ in range(rounds):
            for label, api in apis.items():
                for kind, client, pid in (("socket", sock, proc.pid), ("TestClient", local, None)):
                    method = getattr(client, api)
                    for _ in range(n // 10):
                        method(text="hello world")
                    samples[label].setdefault(kind, []).append(_measure(lambda m=method: m(text="hello world"), n, pid))
                samples[label].setdefault("AsyncTestClient", []).append(uvloop.run(async_round(api)))
        sock.close()
        local.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        label: {
            kind: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
            for kind, got in kinds.items()
        }
        for label, kinds in samples.items()
    }


def main() -> int:
    """Measure and print the figures as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average (1 min) at start: {load:.2f}, {os.cpu_count()} CPUs\n")
    if args.starts > 0:  # --starts 0: the calls only
        print("| form | import asgiserve + service | start to ready |\n|---|---|---|")
        for name, (imp, start) in _starts(args.starts).items():
            print(f"| {name} | {imp * 1000:.0f} ms | {start * 1000:.1f} ms |")
    print("\n| call | socket wall / CPU (us) | TestClient wall / CPU | AsyncTestClient wall / CPU | test client / socket |")
    print("|---|---|---|---|---|")
    for label, kinds in _calls(args.calls, args.rounds).items():
        (sw, sc), (tw, tc), (aw, ac) = kinds["socket"], kinds["TestClient"], kinds["AsyncTestClient"]
        print(
            f"| {label} | {sw:.0f} / {sc:.0f} | {tw:.0f} / {tc:.0f} | {aw:.0f} / {ac:.0f} "
            f"| wall {tw / sw:.2f}, CPU {tc / sc:.2f} (async: {aw / sw:.2f}, {ac / sc:.2f}) |"
        )
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
