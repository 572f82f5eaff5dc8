"""Machine facts for the report: CPU, cores, pinning, Python, and the version of every peer."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path

from . import peers as P
from . import wrk
from .harness import cpu_sets

_MAIN = [
    "asgiserve",
    "uvicorn",
    "granian",
    "fastapi",
    "starlette",
    "pydantic",
    "msgspec",
    "httptools",
    "uvloop",
    "h11",
    "httpx",
    "requests",
    "urllib3",
    "aiohttp",
]
_VENVS = {"bentoml": ["bentoml", "starlette", "uvicorn"], "litserve": ["litserve", "fastapi", "uvicorn"]}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def _venv_versions(venv: str, names: list[str]) -> str:
    python = P.venv_python(venv)
    if not python.exists():
        return "not installed"
    code = f"import importlib.metadata as m\nfor n in {names!r}:\n    print(n, m.version(n))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return "not installed"
    return ", ".join(out.stdout.split("\n")[: len(names)]).strip(", ")


def loadavg() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def collect(load_at_start: str = "") -> dict[str, str]:
    """Facts as label -> text, in display order."""
    server, load = cpu_sets()
    facts = {
        "CPU": _cpu_model(),
        "Cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable; server on CPU "
        f"{','.join(map(str, server))}, load generator on CPU {','.join(map(str, load))} (taskset)",
        "OS": f"{platform.system()} {platform.release()}",
        "Load average (1 min)": f"{load_at_start or '?'} at start, {loadavg()} at end of the run",
        "Python": platform.python_version(),
        "Load generator": wrk.version(),
        "Own server": "yes (python -m asgiserve)" if P.own_server_available() else "not in this checkout",
        "Versions": ", ".join(f"{n} {_version(n)}" for n in _MAIN),
    }
    for venv, names in _VENVS.items():
        facts[f"{venv} venv"] = _venv_versions(venv, names)
    return facts
