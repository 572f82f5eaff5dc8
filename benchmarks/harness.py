"""Shared pieces of the harness: the ``Row`` every suite returns, CPU pinning, process-tree CPU and RSS,
server processes started pinned and waited for, and a tiny blocking HTTP probe.

A suite is a module with ``run(quick: bool) -> list[Row]``; ``run.py`` calls each, then builds the report.
Rows of one ``group`` are compared against the group's ``subject`` row (asgiserve's), so each table shows
how many times better asgiserve is than each peer, all measured in the same run. A suite of clients, say:

    server_cpus, client_cpus = cpu_sets()
    port = free_port()
    server = Server([sys.executable, "-m", "asgiserve", "asgiserve_svc:Predict", "--port", str(port)], port,
                    server_cpus, log_path)
    server.wait_ready("/readyz", 30)
    os.sched_setaffinity(0, client_cpus)     # the clients run in this process: pin, and restore after
    ...
    return [Row(CLIENTS_SYNC, "SyncHTTPClient", calls_per_s, "calls/s", subject=True), ...]
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
APPS = BENCH / "apps"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Group names for the clients suite (benchmarks/clients.py), so its rows meet the targets in report.py:
# rows named "SyncHTTPClient", "httpx.Client", "requests.Session", "urllib3", "raw socket" in CLIENTS_SYNC and
# "AsyncHTTPClient", "httpx.AsyncClient", "aiohttp" in CLIENTS_ASYNC, value in calls/s, the asgiserve row subject.
CLIENTS_SYNC = "Sync clients: 5,000 sequential calls"
CLIENTS_ASYNC = "Async clients: 5,000 calls, 32 tasks"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Row:
    """One measured figure of one system; ``extra`` holds further columns (floats are formatted)."""

    group: str
    name: str
    value: float | None
    unit: str
    higher_is_better: bool = True
    subject: bool = False
    extra: dict[str, float | str | None] = field(default_factory=dict)
    note: str = ""
    flagged: bool = False
    context: bool = False  # shown in the table for scale (e.g. the bare interpreter), not charted as a peer
    # The value measured in each round (None where that round failed): rows of one run line up by round,
    # and a ratio taken within a round cancels what drifts between rounds.
    per_round: list[float | None] = field(default_factory=list)

    @classmethod
    def coerce(cls, item: Any) -> Row:
        """Accept a Row or a dict with Row's fields (for suites that avoid importing this module)."""
        return item if isinstance(item, Row) else cls(**item)


def cpu_sets(server_cpus: int = 1) -> tuple[list[int], list[int]]:
    """Disjoint CPU sets for the server and the load generator (the server's hyperthread siblings excluded)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus, cpus
    server = cpus[: min(server_cpus, len(cpus) - 1)]
    siblings: set[int] = set(server)
    if len(cpus) > 2 * len(server):
        for c in server:
            siblings |= _siblings(c)
    rest = [c for c in cpus if c not in siblings] or cpus[len(server) :]
    return server, rest


def _siblings(cpu: int) -> set[int]:
    path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
    out: set[int] = set()
    try:
        for part in path.read_text().strip().split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except OSError:
        out.add(cpu)
    return out


def taskset(cpus: list[int]) -> list[str]:
    """The command prefix pinning a process to ``cpus``."""
    return ["taskset", "-c", ",".join(map(str, cpus))]


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its descendants."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MiB."""
    total = 0
    for p in _tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """A server process started pinned, in its own process group, with its output in a log file."""

    def __init__(
        self,
        cmd: list[str],
        port: int,
        cpus: list[int],
        log: Path,
        *,
        cwd: Path = APPS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.log = log
        full_env = {**os.environ, "PYTHONPATH": str(APPS), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.started = time.perf_counter()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*taskset(cpus), *cmd],
                cwd=cwd,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, path: str, timeout: float) -> float:
        """Poll ``path`` until 200; the seconds since start. Raises with the log tail on failure."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}: {self.tail()}")
            try:
                if request(self.port, "GET", path, timeout=1)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self, n: int = 400) -> str:
        """The end of the server's output, on one line."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text[-n:].strip().splitlines()[-4:])

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
