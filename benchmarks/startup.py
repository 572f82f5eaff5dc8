"""Startup suite: import wall time of asgiserve against its peers, and the example service's time to ready.

Import times are whole ``python -c`` processes (interpreter start included, as a user sees it), medians of
several runs, each peer with its own interpreter; a bare ``python -c pass`` row shows the interpreter's share.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from . import peers as P
from .harness import ROOT, Row, Server, cpu_sets, free_port, taskset, tree_rss_mb

IMPORT = "Import wall time (python -c, whole process)"
READY = "Example service: process start to first 200 from /readyz"

_IMPORTS = [
    ("asgiserve", None, "import asgiserve"),
    ("fastapi", None, "import fastapi"),
    ("bentoml (+ bentoml.service)", "bentoml", "import bentoml; bentoml.service"),
    ("litserve", "litserve", "import litserve"),
    ("python -c pass (interpreter alone)", None, "pass"),
]


def _time_import(python: str, code: str, runs: int, cpus: list[int]) -> tuple[float | None, str]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([*taskset(cpus), python, "-c", code], capture_output=True, timeout=120, cwd="/")
        elapsed = time.perf_counter() - t0
        if out.returncode != 0:
            return None, out.stderr.decode(errors="replace").strip().splitlines()[-1][:200]
        times.append(elapsed)
    return statistics.median(times) * 1000, ""


def _example_ready(runs: int, cpus: list[int]) -> list[Row]:
    """Start the example service ``runs`` times; median seconds to the first 200 from /readyz, and RSS."""
    own = P.own_server_available()
    label = "asgiserve example (own server)" if own else "asgiserve example (on uvicorn)"
    times, rss = [], []
    for _ in range(runs):
        port = free_port()
        if own:
            cmd = [
                P.PY,
                "-m",
                "asgiserve",
                "summarizer:Summarization",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        else:
            cmd = P.uvicorn_cmd("summarizer:app")(port)
        log = ROOT / "benchmarks" / "results" / "example-ready.log.tmp"
        server = Server(
            cmd, port, cpus, log, cwd=ROOT / "examples", env={"PYTHONPATH": str(ROOT / "examples")}
        )
        try:
            times.append(server.wait_ready("/readyz", 30))
            time.sleep(0.2)
            rss.append(tree_rss_mb(server.proc.pid))
        except RuntimeError as exc:
            return [Row(READY, label, None, "s", False, subject=True, note=str(exc)[:300], flagged=True)]
        finally:
            server.stop()
    log.unlink(missing_ok=True)
    return [
        Row(
            READY,
            label,
            statistics.median(times),
            "s",
            False,
            subject=True,
            extra={"idle RSS MiB": statistics.median(rss)},
        ),
    ]


def run(quick: bool) -> list[Row]:
    """Import times and the example's readiness, pinned to the server CPUs."""
    server_cpus, _ = cpu_sets()
    runs = 3 if quick else 7
    rows = []
    for name, venv, code in _IMPORTS:
        if venv is not None:
            why = P.ensure_venv(venv)
            if why:
                rows.append(Row(IMPORT, name, None, "ms", False, note=why, flagged=True))
                continue
            python = str(P.venv_python(venv))
        else:
            python = sys.executable
        ms, err = _time_import(python, code, runs, server_cpus)
        rows.append(
            Row(
                IMPORT,
                name,
                ms,
                "ms",
                False,
                subject=name == "asgiserve",
                context=venv is None and code == "pass",
                note=err,
                flagged=bool(err),
            )
        )
    rows += _example_ready(runs, server_cpus)
    return rows
