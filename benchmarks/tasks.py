"""Task benchmark: ``@task`` endpoints on asgiserve against BentoML's, the same service, in the same run.

Both servers run one worker, pinned apart from the load generator (this process, asyncio, asgiserve's
``AsyncHTTPClient`` speaking plain HTTP to both), with their task stores in a fresh temporary folder:
- submit throughput: 32 concurrent submitters send ``POST /work/submit`` for ``--tasks`` tasks in all;
  the figure is submissions answered per second (every answer checked for a ``task_id``);
- submit to completed: 32 submitters each submit a task, then poll ``GET /work/status`` every 2 ms until
  it is ``completed``, and fetch ``/work/get`` (checked); latency is submit to the completed status.
A system with any failed answer is flagged.

    python benchmarks/tasks.py [--tasks 2000] [--latency-tasks 640] [--only asgiserve|bentoml]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks.harness import HOST, Row, Server, cpu_sets, free_port

SUBMIT = "Tasks: submit throughput, 32 concurrent submitters"
LATENCY = "Tasks: submit to completed, 32 concurrent submitters"
CONCURRENCY = 32


def _commands(name: str, port: int) -> list[str]:
    if name == "asgiserve":
        return peers._own("asgiserve_tasks:TaskBench", "httptools")(port)
    bentoml = str(peers.venv_python("bentoml").parent / "bentoml")
    return [bentoml, "serve", "bento_tasks:TaskBench", "--host", HOST, "--port", str(port)]


async def _measure(url: str, tasks: int, latency_tasks: int) -> tuple[float, list[float], int]:
    """(submissions per second, submit-to-completed latencies in seconds, failed answers)."""
    import asgiserve

    failures = 0
    async with asgiserve.AsyncHTTPClient(url, server_ready_timeout=60) as client:

        async def submit(i: int) -> str | None:
            nonlocal failures
            r = await client.request("POST", "/work/submit", json={"text": f"task {i}"})
            body = r.json() if r.status == 200 else None
            if not isinstance(body, dict) or not isinstance(body.get("task_id"), str):
                failures += 1
                return None
            return str(body["task_id"])

        async def status(task_id: str) -> str:
            r = await client.request("GET", f"/work/status?task_id={task_id}")
            body = r.json() if r.status == 200 else None
            return str(body.get("status")) if isinstance(body, dict) else f"HTTP {r.status}"

        for i in range(20):  # warm-up
            await submit(i)
        queue = iter(range(tasks))
        ids: list[str] = []

        async def submitter() -> None:
            for i in queue:
                task_id = await submit(i)
                if task_id is not None:
                    ids.append(task_id)

        t0 = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(CONCURRENCY)))
        rate = tasks / (time.perf_counter() - t0)
        deadline = time.monotonic() + 120
        while ids and time.monotonic() < deadline and await status(ids[-1]) not in ("completed", "failed"):
            await asyncio.sleep(0.05)  # let the backlog drain before measuring latency

        latencies: list[float] = []
        lat_queue = iter(range(latency_tasks))

        async def follower() -> None:
            nonlocal failures
            for i in lat_queue:
                start = time.perf_counter()
                task_id = await submit(i)
                if task_id is None:
                    continue
                while True:
                    st = await status(task_id)
                    if st == "completed":
                        break
                    if st not in ("pending", "in_progress") or time.perf_counter() - start > 60:
                        failures += 1
                        break
                    await asyncio.sleep(0.002)
                else:
                    continue
                latencies.append(time.perf_counter() - start)
                r = await client.request("GET", f"/work/get?task_id={task_id}")
                if r.status != 200 or r.json() != {"result": f"TASK {i}", "length": len(f"task {i}")}:
                    failures += 1

        await asyncio.gather(*(follower() for _ in range(CONCURRENCY)))
    return rate, latencies, failures


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(name: str, tasks: int, latency_tasks: int, logs: Path) -> list[Row]:
    """Start ``name``'s server, measure it, stop it: its two rows."""
    subject = name == "asgiserve"
    label = "asgiserve (own server, task store on SQLite WAL)" if subject else "BentoML (bentoml serve)"
    if not subject:
        why = peers.ensure_venv("bentoml")
        if why is not None:
            return [Row(g, label, None, u, note=why, flagged=True) for g, u in ((SUBMIT, "tasks/s"), (LATENCY, "ms"))]
    server_cpus, client_cpus = cpu_sets()
    port = free_port()
    store = tempfile.mkdtemp(prefix=f"tasks-{name}-")
    env = {"ASGISERVE_TASK_DIR": store, "BENTOML_HOME": store}
    server = Server(_commands(name, port), port, server_cpus, logs / f"tasks-{name}.log", env=env)
    before = os.sched_getaffinity(0)
    try:
        server.wait_ready("/readyz", 90)
        os.sched_setaffinity(0, client_cpus)
        rate, latencies, failures = asyncio.run(_measure(f"http://{HOST}:{port}", tasks, latency_tasks))
    except Exception as exc:  # a failed start or run is a flagged row, not a failed suite
        note = f"{type(exc).__name__}: {exc}"[:300]
        return [Row(g, label, None, u, subject=subject, note=note, flagged=True) for g, u in ((SUBMIT, "tasks/s"), (LATENCY, "ms"))]
    finally:
        os.sched_setaffinity(0, before)
        server.stop()
    note = f"{failures} failed answers" if failures else ""
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    return [
        Row(SUBMIT, label, rate, "tasks/s", subject=subject, note=note, flagged=bool(failures)),
        Row(
            LATENCY,
            label,
            None if p50 is None else p50 * 1000,
            "ms",
            higher_is_better=False,
            subject=subject,
            extra={"p99 ms": None if p99 is None else p99 * 1000},
            note=note,
            flagged=bool(failures) or p50 is None,
        ),
    ]


def run(quick: bool, only: list[str] | None = None) -> list[Row]:
    """The suite entry point (``benchmarks/run.py``): both systems, interleaved once."""
    tasks, latency_tasks = (300, 160) if quick else (2000, 640)
    logs = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    rows: list[Row] = []
    for name in only or ["asgiserve", "bentoml"]:
        rows += measure(name, tasks, latency_tasks, logs)
    return rows


def main() -> None:
    """Run from the command line and print the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--latency-tasks", type=int, default=640)
    ap.add_argument("--only", nargs="*", choices=["asgiserve", "bentoml"])
    args = ap.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    for name in args.only or ["asgiserve", "bentoml"]:
        for row in measure(name, args.tasks, args.latency_tasks, logs):
            extra = "".join(f", {k} {v:.3g}" for k, v in row.extra.items() if isinstance(v, float))
            value = "n/a" if row.value is None else f"{row.value:,.3g}"
            print(f"{row.group} | {row.name}: {value} {row.unit}{extra} {row.note}".rstrip(), flush=True)
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
