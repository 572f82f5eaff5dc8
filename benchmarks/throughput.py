"""The server suite: every peer started in turn (A B C ... A B C ...), each round measuring all its routes.

Per server session: start pinned to the server CPUs, time to the first ready answer, idle RSS, a correctness
check of every route (status 200 and the exact expected JSON), then per route a warm-up and a measured wrk
run (or the streaming client) with the server's CPU time read from /proc before and after. Figures are the
medians over rounds; any error in any round flags the row. wrk counts answers of 400 and up as "Non-2xx or
3xx responses"; the check before each run (a 200 with the exact body) is what rules out redirects.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import peers as P
from . import wrk
from .apps.workload import HELLO_EXPECTED, PREDICT_BODY, PREDICT_EXPECTED, STREAM_BODY
from .harness import ROOT, Row, Server, cpu_sets, free_port, request, taskset, tree_cpu_seconds, tree_rss_mb

STARTUP = "Server start to first ready answer"
RSS = "Idle RSS after start (process tree)"

GROUP_ORDER = [P.PREDICT, P.HELLO, P.SYNC, P.STREAM, P.MOUNT_GET, P.MOUNT_POST, STARTUP, RSS]
_BODIES = {P.PREDICT: PREDICT_BODY, P.SYNC: PREDICT_BODY, P.MOUNT_POST: PREDICT_BODY, P.STREAM: STREAM_BODY}
_EXPECTED = {
    P.PREDICT: PREDICT_EXPECTED,
    P.SYNC: PREDICT_EXPECTED,
    P.MOUNT_POST: PREDICT_EXPECTED,
    P.HELLO: HELLO_EXPECTED,
    P.MOUNT_GET: HELLO_EXPECTED,
}


@dataclass
class Settings:
    """How long and how often to measure."""

    rounds: int = 3
    duration: int = 8
    warmup: int = 2
    connections: int = 64
    streams: int = 32
    only: list[str] | None = None
    routes: list[str] | None = None  # groups to measure (all when None)
    baseline: P.Peer | None = None  # another revision's server, run right after asgiserve's own


@dataclass
class _Samples:
    values: list[float] = field(default_factory=list)
    by_round: dict[int, float] = field(default_factory=dict)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failure: str = ""


def _check(port: int, method: str, path: str, group: str) -> str:
    """Empty when the route answers 200 with the expected body, else what was wrong."""
    status, body = request(port, method, path, _BODIES.get(group))
    if status != 200:
        return f"{method} {path} answered {status}: {body[:120]!r}"
    expected = _EXPECTED.get(group)
    if expected is not None and json.loads(body) != expected:
        return f"{method} {path} answered a different body: {body[:120]!r}"
    return ""


def _stream(port: int, path: str, cpus: list[int], seconds: int, streams: int) -> dict[str, Any]:
    cmd = [
        *taskset(cpus),
        sys.executable,
        "-m",
        "benchmarks.stream_client",
        str(port),
        path,
        str(seconds),
        str(streams),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"stream client failed: {out.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _session(
    peer: P.Peer,
    cfg: Settings,
    cpus: tuple[list[int], list[int]],
    logs: Path,
    samples: dict[tuple[str, str], _Samples],
    rnd: int = 0,
) -> None:
    """One server run (round ``rnd``): start, check, measure every route, stop."""
    server_cpus, load_cpus = cpus
    port = free_port()
    server = Server(peer.cmd(port), port, server_cpus, logs / f"{peer.key}.log", env=peer.env)
    try:
        try:
            ready = server.wait_ready(peer.ready_path, peer.start_timeout)
        except RuntimeError as exc:
            for group in (*peer.routes, STARTUP, RSS):
                samples[(group, peer.label)].failure = f"did not start: {exc}"[:300]
            return
        for group, value in ((STARTUP, ready), (RSS, tree_rss_mb(server.proc.pid))):
            samples[(group, peer.label)].values.append(value)
            samples[(group, peer.label)].by_round[rnd] = value
        measured: dict[tuple[str, str], tuple[float, float, float, float, dict[str, int]]] = {}
        for group, path in peer.routes.items():
            s = samples[(group, peer.label)]
            method = "GET" if group in (P.HELLO, P.MOUNT_GET) else "POST"
            if (method, path) not in measured:
                try:
                    problem = _check(port, method, path, group)
                    if not problem:
                        measured[(method, path)] = _measure(server, port, method, path, group, cfg, load_cpus)
                except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                    problem = f"{method} {path}: {type(exc).__name__}: {exc}; server: {server.tail()}"
                if problem:
                    s.failure = problem[:300]
                    continue
            value, p50, p99, cpu_us, errors = measured[(method, path)]
            s.values.append(value)
            s.by_round[rnd] = value
            s.p50.append(p50)
            s.p99.append(p99)
            s.cpu_us.append(cpu_us)
            for k, v in errors.items():
                s.errors[k] += v
    finally:
        server.stop()


def _measure(
    server: Server, port: int, method: str, path: str, group: str, cfg: Settings, load_cpus: list[int]
) -> tuple[float, float, float, float, dict[str, int]]:
    pid = server.proc.pid
    if group == P.STREAM:
        _stream(port, path, load_cpus, cfg.warmup, cfg.streams)
        cpu0 = tree_cpu_seconds(pid)
        r = _stream(port, path, load_cpus, cfg.duration, cfg.streams)
        cpu = tree_cpu_seconds(pid) - cpu0
        errors = {"stream errors": int(r["errors"])} if r["errors"] else {}
        per = cpu / r["streams"] * 1e6 if r["streams"] else 0.0
        return r["tokens_per_s"], r["ttft_p50_ms"], r["ttft_p99_ms"], per, errors
    lua = wrk.script(method, _BODIES.get(group))
    try:
        wrk.run(port, path, lua, cpus=load_cpus, duration=cfg.warmup, connections=cfg.connections)
        cpu0 = tree_cpu_seconds(pid)
        res = wrk.run(port, path, lua, cpus=load_cpus, duration=cfg.duration, connections=cfg.connections)
        cpu = tree_cpu_seconds(pid) - cpu0
    finally:
        if lua is not None:
            lua.unlink()
    per = cpu / res.requests * 1e6 if res.requests else 0.0
    return res.rps, res.p50_ms, res.p99_ms, per, res.errors


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def run_suite(cfg: Settings) -> tuple[list[Row], list[str]]:
    """Measure every selected peer; rows for every group, and notes on what was left out."""
    chosen, notes = P.selected(cfg.only, cfg.routes, cfg.baseline)
    cpus = cpu_sets()
    logs = Path(tempfile.mkdtemp(prefix="asgiserve-bench-"))
    unavailable: dict[str, str] = {}
    for peer in chosen:
        if peer.venv:
            why = P.ensure_venv(peer.venv)
            if why:
                unavailable[peer.label] = why
    samples: dict[tuple[str, str], _Samples] = defaultdict(_Samples)
    for rnd in range(cfg.rounds):
        for peer in chosen:
            if peer.label in unavailable:
                continue
            print(f"  round {rnd + 1}/{cfg.rounds}: {peer.label}", flush=True)
            _session(peer, cfg, cpus, logs, samples, rnd)
    rows: list[Row] = []
    for group in GROUP_ORDER:
        for peer in chosen:
            if group in peer.routes or group in (STARTUP, RSS):
                s = samples.get((group, peer.label))
                row = _row(group, peer, s, unavailable.get(peer.label))
                row.per_round = [s.by_round.get(i) for i in range(cfg.rounds)] if s else []
                rows.append(row)
    _mark_subjects(rows, chosen)
    if any(r.flagged for r in rows):
        notes.append(f"server logs of this run are kept in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    return rows, notes


def _row(group: str, peer: P.Peer, s: _Samples | None, unavailable: str | None) -> Row:
    if group == STARTUP:
        unit, better = "s", False
    elif group == RSS:
        unit, better = "MiB", False
    elif group == P.STREAM:
        unit, better = "tokens/s", True
    else:
        unit, better = "req/s", True
    note = unavailable or (s.failure if s else "not measured")
    if s is None or not s.values:
        return Row(group, peer.label, None, unit, better, note=note, flagged=True)
    extra: dict[str, float | str | None] = {}
    if group == P.STREAM:
        extra = {
            "TTFT p50 ms": _med(s.p50),
            "TTFT p99 ms": _med(s.p99),
            "server CPU us/stream": _med(s.cpu_us),
        }
    elif group not in (STARTUP, RSS):
        extra = {"p50 ms": _med(s.p50), "p99 ms": _med(s.p99), "server CPU us/req": _med(s.cpu_us)}
    errors = ", ".join(f"{k} {v}" for k, v in s.errors.items())
    flagged = bool(errors or s.failure)
    note = "; ".join(x for x in (f"ERRORS: {errors}" if errors else "", s.failure) if x)
    return Row(group, peer.label, _med(s.values), unit, better, extra=extra, note=note, flagged=flagged)


def _mark_subjects(rows: list[Row], chosen: list[P.Peer]) -> None:
    """In each group, asgiserve's first measured row (own server before uvicorn) is the one compared."""
    order = [p.label for p in chosen if p.subject]
    by_group: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_group[r.group].append(r)
    for group_rows in by_group.values():
        for label in order:
            hit = [r for r in group_rows if r.name == label and r.value is not None]
            if hit:
                hit[0].subject = True
                break
