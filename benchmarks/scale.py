"""Scaling benchmark: POST /predict with 1, 2, 4, 8 workers, the shared socket against ``--reuse-port``,
beside ``uvicorn --workers N`` serving the same app.

For each worker count that fits (the server gets up to ``count`` CPUs and the load generator at least one,
so a 2-core machine measures 1 worker, and 2 only with ``--oversubscribe``), each system runs pinned to
the server CPUs and wrk (``-c64``) to the others. Besides requests/s and p99, the row says how evenly the
work spread: ``spread`` is the busiest worker's CPU time over the idlest's during the run (1.0 is even).
Ratios are to the same system with one worker.

    python benchmarks/scale.py                          # the counts that fit this machine, 8 s runs
    python benchmarks/scale.py --workers 2 --duration 2 --oversubscribe --only asgiserve
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers, wrk
from benchmarks.apps.workload import PREDICT_BODY, PREDICT_EXPECTED
from benchmarks.harness import Row, Server, _tree, cpu_sets, free_port, request

GROUP = "Scaling: POST /predict by worker count (wrk -c64)"
COUNTS = (1, 2, 4, 8)


def _asgiserve(workers: int, reuse_port: bool) -> Callable[[int], list[str]]:
    def cmd(port: int) -> list[str]:
        out = peers._own("asgiserve_svc:Predict", "httptools")(port)
        out[out.index("--workers") + 1] = str(workers)
        return out + (["--reuse-port"] if reuse_port else [])

    return cmd


def _uvicorn(workers: int) -> Callable[[int], list[str]]:
    return lambda port: [*peers.uvicorn_cmd("asgiserve_svc:app")(port), "--workers", str(workers)]


SYSTEMS: dict[str, Callable[[int], Callable[[int], list[str]]]] = {
    "asgiserve (shared socket)": lambda n: _asgiserve(n, False),
    "asgiserve --reuse-port": lambda n: _asgiserve(n, True),
    "uvicorn --workers": _uvicorn,
}


def _worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each worker (every process of the tree but its root)."""
    out: dict[int, float] = {}
    for p in _tree(pid)[1:]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _wait_workers(server: Server, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(_worker_cpu(server.proc.pid)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def measure(name: str, workers: int, duration: int, oversubscribe: bool, log_dir: Path) -> Row:
    """One system with ``workers`` workers: requests/s, p99 and the spread of CPU across workers."""
    server_cpus, client_cpus = cpu_sets(workers)
    if len(server_cpus) < workers and not oversubscribe:
        return Row(GROUP, f"{name}, {workers}", None, "req/s", note="skipped: not enough CPUs", flagged=True)
    port = free_port()
    cmd = SYSTEMS[name](workers)(port)
    server = Server(cmd, port, server_cpus, log_dir / f"scale-{port}.log")
    lua = wrk.script("POST", PREDICT_BODY)
    try:
        server.wait_ready("/readyz", 60)
        if workers > 1:
            _wait_workers(server, workers)
        status, body = request(port, "POST", "/predict", PREDICT_BODY)
        if status != 200 or json.loads(body) != PREDICT_EXPECTED:
            raise RuntimeError(f"/predict answered {status}: {body[:100]!r}")
        wrk.run(port, "/predict", lua, cpus=client_cpus, duration=1)  # warm-up
        before = _worker_cpu(server.proc.pid)
        result = wrk.run(port, "/predict", lua, cpus=client_cpus, duration=duration)
        after = _worker_cpu(server.proc.pid)
    finally:
        server.stop()
        if lua is not None:
            lua.unlink()
    used = [after[p] - before.get(p, 0.0) for p in after if after[p] - before.get(p, 0.0) > 0]
    if name.startswith("uvicorn") and len(used) > workers:
        used.remove(min(used))  # uvicorn's supervisor process sits idle beside its workers
    spread = max(used) / min(used) if len(used) > 1 and min(used) > 0 else 1.0
    note = f"{len(server_cpus)} server CPU(s)" + ("; errors: " + str(result.errors) if result.errors else "")
    return Row(
        GROUP,
        f"{name}, {workers}",
        result.rps,
        "req/s",
        subject=(name == "asgiserve (shared socket)" and workers == 1),
        extra={"p99 ms": result.p99_ms, "spread": spread, "workers": float(workers)},
        note=note,
        flagged=bool(result.errors),
    )


def _with_ratios(rows: list[Row]) -> list[Row]:
    one = {r.name.rsplit(", ", 1)[0]: r.value for r in rows if r.extra.get("workers") == 1.0}
    for r in rows:
        base = one.get(r.name.rsplit(", ", 1)[0])
        r.extra["x one worker"] = r.value / base if r.value and base else None
    return rows


def measure_all(counts: list[int], duration: int, oversubscribe: bool = False, only: str = "") -> list[Row]:
    """Every system (whose name contains ``only``) at every worker count, with the ratios to one worker."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="asgiserve-scale-") as tmp:
        for workers in counts:
            for name in SYSTEMS:
                if only in name:
                    rows.append(measure(name, workers, duration, oversubscribe, Path(tmp)))
    return _with_ratios(rows)


def run(quick: bool) -> list[Row]:
    """The suite entry point (``benchmarks/run.py``): the counts that fit this machine."""
    return measure_all(list(COUNTS[:2] if quick else COUNTS), 2 if quick else 8)


def main() -> int:
    """Command line: print one line per row."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="*", default=list(COUNTS), help="worker counts to measure")
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    ap.add_argument("--oversubscribe", action="store_true", help="measure counts above the CPUs there are")
    ap.add_argument("--only", default="", help="only the systems whose name contains this")
    args = ap.parse_args()
    for r in measure_all(args.workers, args.duration, args.oversubscribe, args.only):
        extra = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.extra.items())
        print(f"{r.name:36} {r.value or 0:10.0f} {r.unit}  {extra}  {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
