"""Running wrk pinned to the load generator's CPUs and reading its report, errors included."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .harness import HOST, taskset

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")
_PCT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class WrkResult:
    """What one wrk run measured; ``errors`` is empty when every response was good."""

    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]


def parse(text: str) -> WrkResult:
    """Read wrk's --latency report."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None:
        raise RuntimeError(f"unreadable wrk output: {text.strip()[-300:]}")
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PCT.finditer(text)}
    errors: dict[str, int] = {}
    non2xx = _NON2XX.search(text)
    if non2xx and int(non2xx.group(1)):
        errors["non-2xx"] = int(non2xx.group(1))
    sock = _SOCKET.search(text)
    if sock:
        for name, count in zip(("connect", "read", "write", "timeout"), sock.groups()):
            if int(count):
                errors[name] = int(count)
    if int(total.group(1)) == 0:
        errors["no responses"] = 1
    return WrkResult(float(rps.group(1)), int(total.group(1)), pct.get("50", 0.0), pct.get("99", 0.0), errors)


def script(method: str, body: bytes | None) -> Path | None:
    """A Lua script setting a static method, body and content type (no per-request Lua callback)."""
    if body is None and method == "GET":
        return None
    lua = f'wrk.method = "{method}"\nwrk.headers["Content-Type"] = "application/json"\n'
    if body is not None:
        lua += "wrk.body = '" + body.decode().replace("\\", "\\\\").replace("'", "\\'") + "'\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    return Path(f.name)


def run(
    port: int,
    path: str,
    lua: Path | None,
    *,
    cpus: list[int],
    duration: int,
    connections: int = 64,
    threads: int = 1,
) -> WrkResult:
    """One wrk run against 127.0.0.1:port."""
    cmd = [*taskset(cpus), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    return parse(out.stdout)


def version() -> str:
    """wrk's version line."""
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" [")[0] if text else "unknown"
