"""Batching benchmark: adaptive batching on asgiserve against BentoML, LitServe and Ray Serve, same models, same run.

Two models (``apps/batch_model.py``): a synthetic one whose batch of n items costs ``c0 + c1 * n`` of
sleep (a GPU's shape: the host CPU stays free while it runs), and the iris ONNX classifier of
``examples/`` (microseconds per batch, so the serving overhead shows). Each system serves both with
its own batching, set alike: ``max_batch_size``, ``max_latency_ms`` (asgiserve, BentoML) and a wait to
fill a batch (LitServe's ``batch_timeout``, Ray's ``batch_wait_timeout_s``). Every request carries one
item; each client (a keep-alive connection of a raw asyncio client, closed loop) sends its own value and
checks its answer. Per cell: requests/s answered 200 with the right value, p50 and p99 latency, the
mean batch size the model saw, and the share of the time the model was running (every system's model
appends each batch's size, start and end to one file). For the
synthetic model, the limit: full batches back to back, ``max / (c0 + c1 * max)`` items/s, and each
system's share of it.

The server runs on one CPU and the load generator (this process) on another (taskset). BentoML and
LitServe run in their virtualenvs (``peers.py`` makes them on first use, with onnxruntime added here);
Ray Serve in ``.venv-ray`` at the repository root (``make test-ray`` makes it) when it is there.

    python benchmarks/batching.py [--duration 6] [--clients 64 256] [--only asgiserve bentoml ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks.harness import HOST, ROOT, Row, Server, _tree, cpu_sets, free_port
from benchmarks.report import table

SYSTEMS = ["asgiserve", "bentoml", "litserve", "ray"]
LABELS = {
    "asgiserve": "asgiserve (own server)",
    "bentoml": "BentoML (bentoml serve)",
    "litserve": "LitServe",
    "ray": "Ray Serve (@serve.batch)",
}
FLOWERS = ([5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3])  # setosa, versicolor, virginica
WARMUP_S = 1.0


@dataclass
class Settings:
    """The model's cost and the batching limits, handed to every app through the environment."""

    c0_ms: float = 8.0
    c1_ms: float = 0.25
    max_batch: int = 32
    max_latency_ms: int = 1000
    wait_ms: float = 10.0

    def env(self, log: Path) -> dict[str, str]:
        """The variables ``apps/batch_model.py`` reads."""
        return {
            "BATCH_C0_MS": str(self.c0_ms),
            "BATCH_C1_MS": str(self.c1_ms),
            "BATCH_MAX": str(self.max_batch),
            "BATCH_MAX_LATENCY_MS": str(self.max_latency_ms),
            "BATCH_WAIT_MS": str(self.wait_ms),
            "BATCH_LOG": str(log),
            "BENTOML_DO_NOT_TRACK": "True",
            "LITSERVE_DISABLE_TELEMETRY": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def limit(self) -> float:
        """Items/s of the synthetic model running full batches back to back."""
        return self.max_batch / ((self.c0_ms + self.c1_ms * self.max_batch) / 1000)


def _ray_python() -> Path:
    return ROOT / ".venv-ray" / "bin" / "python"


def _command(system: str, model: str, port: int) -> tuple[list[str], str, str]:
    """(command, readiness path, the model's route) for ``system`` serving ``model``."""
    if system == "asgiserve":
        cmd = peers._own("batch_asgiserve:Batching", "httptools")(port)
        return cmd, "/readyz", f"/{model}"
    if system == "bentoml":
        bentoml = str(peers.venv_python("bentoml").parent / "bentoml")
        return (
            [bentoml, "serve", "batch_bento:Batching", "--host", HOST, "--port", str(port)],
            "/readyz",
            f"/{model}",
        )
    if system == "litserve":
        return (
            [str(peers.venv_python("litserve")), "batch_litserve.py", model, str(port)],
            "/health",
            "/predict",
        )
    return [str(_ray_python()), "batch_ray.py", model, str(port)], "/-/healthz", "/"


def _prepare(system: str) -> str | None:
    """Make ``system``'s virtualenv ready (with onnxruntime); None when ready, else why not."""
    if system == "asgiserve":
        return None
    if system == "ray":
        return None if _ray_python().exists() else "no .venv-ray (make test-ray creates it)"
    why = peers.ensure_venv(system)
    if why is not None:
        return why
    py = str(peers.venv_python(system))
    if subprocess.run([py, "-c", "import onnxruntime, numpy"], capture_output=True).returncode != 0:
        done = subprocess.run([py, "-m", "pip", "install", "-q", "onnxruntime", "numpy"], capture_output=True)
        if done.returncode != 0:
            return f"could not install onnxruntime in .venv-{system}"
    return None


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request, wait for the whole response (Content-Length)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop > 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
        elif b"\r\ntransfer-encoding: chunked" in head:
            chunks = self._chunked(end + 4)
            if chunks is None:
                return
            body = chunks
        else:
            waiter.set_exception(ConnectionError("response without a length"))
            return
        waiter.set_result((int(head[9:12]), body))

    def _chunked(self, at: int) -> bytes | None:
        """The body of a whole chunked response starting at ``at`` (taken from the buffer), or None for more."""
        out = bytearray()
        while True:
            line_end = self.buf.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(self.buf[at:line_end]).split(b";")[0], 16)
            if len(self.buf) < line_end + 2 + size + 2:
                return None
            out += self.buf[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
            if size == 0:  # no trailers are sent by the servers measured here
                del self.buf[:at]
                return bytes(out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))


@dataclass
class Load:
    """What the clients saw in the timed window."""

    ok: int
    errors: int
    latencies: list[float]
    seconds: float
    first_error: str
    window: tuple[float, float]  # its start and end on ``time.monotonic``


async def _load(port: int, route: str, model: str, clients: int, duration: float) -> Load:
    loop = asyncio.get_running_loop()
    t_start = time.monotonic() + WARMUP_S
    t_end = t_start + duration
    latencies: list[float] = []
    counts = [0, 0]
    first_error: list[str] = []

    async def client(k: int) -> None:
        if model == "synthetic":
            payload, expected = {"xs": [float(k)]}, [2.0 * k]
        else:
            payload, expected = {"features": [FLOWERS[k % 3]]}, [k % 3]
        body = json.dumps(payload).encode()
        request = (
            f"POST {route} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        conn: _Conn | None = None
        while (now := time.monotonic()) < t_end:
            if conn is None or conn.transport is None or conn.transport.is_closing():
                try:
                    _, conn = await loop.create_connection(_Conn, HOST, port)
                except OSError as exc:
                    first_error.append(str(exc))
                    await asyncio.sleep(0.05)
                    continue
            conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(request)
            try:
                status, answer = await asyncio.wait_for(conn.waiter, max(0.1, t_end - now + 5))
                good = status == 200 and json.loads(answer) == expected
            except (ConnectionError, asyncio.TimeoutError, ValueError) as exc:
                status, answer, good = 0, str(exc).encode(), False
                conn.transport.close()
            done = time.monotonic()
            if now >= t_start and done <= t_end:
                counts[0 if good else 1] += 1
                if good:
                    latencies.append(done - now)
                elif not first_error:
                    first_error.append(f"HTTP {status}: {answer[:120]!r}")
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    error = first_error[0] if first_error else ""
    return Load(counts[0], counts[1], latencies, duration, error, (t_start, t_end))


def _batches(log: Path) -> list[tuple[int, float, float]]:
    """(size, start, end) of each batch the model ran so far."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return []
    return [(int(n), float(a), float(b)) for n, a, b in (line.split() for line in lines)]


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def group(model: str, clients: int, s: Settings) -> str:
    """The table a cell belongs to."""
    if model == "synthetic":
        what = f"synthetic model ({s.c0_ms:g} ms + {s.c1_ms:g} ms/item, limit {s.limit():,.0f} items/s)"
    else:
        what = "iris ONNX classifier"
    return f"Batching: {what}, max_batch_size {s.max_batch}, {clients} clients"


def measure(
    system: str, model: str, clients_list: list[int], duration: float, s: Settings, logs: Path
) -> list[Row]:
    """Start ``system`` serving ``model``, load it with each client count, stop it: one row per count."""
    label, subject = LABELS[system], system == "asgiserve"
    why = _prepare(system)
    if why is not None:
        return [
            Row(group(model, c, s), label, None, "req/s", subject=subject, note=why, flagged=True)
            for c in clients_list
        ]
    server_cpus, client_cpus = cpu_sets()
    port = free_port()
    batch_log = logs / f"{system}-{model}.batches"
    cmd, ready, route = _command(system, model, port)
    server = Server(cmd, port, server_cpus, logs / f"{system}-{model}.log", env=s.env(batch_log))
    before = os.sched_getaffinity(0)
    rows: list[Row] = []
    try:
        server.wait_ready(ready, 120)
        os.sched_setaffinity(0, client_cpus)
        for clients in clients_list:
            seen = len(_batches(batch_log))
            load = asyncio.run(_load(port, route, model, clients, duration))
            time.sleep(0.2)  # batches still running at the window's end are logged when they end
            rows.append(_row(system, model, clients, load, _batches(batch_log)[seen:], s))
            time.sleep(0.3)  # the last answers of this cell drain before the next
    except Exception as exc:  # a failed start or run is a flagged row, not a failed suite
        note = f"{type(exc).__name__}: {exc}"[:300]
        done = {r.group for r in rows}
        rows += [
            Row(group(model, c, s), label, None, "req/s", subject=subject, note=note, flagged=True)
            for c in clients_list
            if group(model, c, s) not in done
        ]
    finally:
        os.sched_setaffinity(0, before)
        tree = _tree(server.proc.pid)
        server.stop()
        for pid in tree:  # processes that left the group (Ray's) go too
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return rows


def _row(
    system: str, model: str, clients: int, load: Load, batches: list[tuple[int, float, float]], s: Settings
) -> Row:
    rate = load.ok / load.seconds
    p50, p99 = _percentile(load.latencies, 0.5), _percentile(load.latencies, 0.99)
    lo, hi = load.window
    # The model's time inside the window: what the batching left idle is the rest.
    busy = sum(max(0.0, min(b, hi) - max(a, lo)) for _, a, b in batches)
    sizes = [n for n, a, _ in batches if lo <= a < hi]
    extra: dict[str, float | str | None] = {
        "p50 ms": None if p50 is None else p50 * 1000,
        "p99 ms": None if p99 is None else p99 * 1000,
        "mean batch": sum(sizes) / len(sizes) if sizes else None,
        "model busy %": 100 * busy / (hi - lo),
    }
    if model == "synthetic":
        extra["% of limit"] = 100 * rate / s.limit()
    note = f"{load.errors} failed ({load.first_error})" if load.errors else ""
    return Row(
        group(model, clients, s),
        LABELS[system],
        rate,
        "req/s",
        subject=system == "asgiserve",
        extra=extra,
        note=note,
        flagged=bool(load.errors),
    )


def run(quick: bool, only: list[str] | None = None) -> list[Row]:
    """The suite entry point (``benchmarks/run.py``): every system on both models, 64 and 256 clients."""
    return run_all(only or SYSTEMS, ["synthetic", "iris"], [64, 256], 3.0 if quick else 6.0, Settings())


def run_all(
    systems: list[str], models: list[str], clients: list[int], duration: float, s: Settings
) -> list[Row]:
    """Each system on each model (one server start per system and model), the rows in table order."""
    logs = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    rows: list[Row] = []
    for model in models:
        for system in systems:
            print(f"  {system} / {model} ...", flush=True)
            rows += measure(system, model, clients, duration, s, logs)
    order = {g: i for i, g in enumerate(group(m, c, s) for m in models for c in clients)}
    return sorted(rows, key=lambda r: order.get(r.group, 0))


def main() -> None:
    """Run from the command line; print the tables (and write them with ``--out``)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--duration", type=float, default=6.0, help="timed seconds per cell (after 1 s of warm-up)"
    )
    ap.add_argument("--clients", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--only", nargs="+", choices=SYSTEMS)
    ap.add_argument("--models", nargs="+", choices=["synthetic", "iris"], default=["synthetic", "iris"])
    ap.add_argument("--c0-ms", type=float, default=8.0)
    ap.add_argument("--c1-ms", type=float, default=0.25)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = ap.parse_args()
    s = Settings(c0_ms=args.c0_ms, c1_ms=args.c1_ms, max_batch=args.max_batch)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = run_all(args.only or SYSTEMS, args.models, args.clients, args.duration, s)
    by_group: dict[str, list[Row]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    load_after = os.getloadavg()
    lines = [
        f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min; a 2-core machine shared with "
        f"other work); {args.duration:g} s per cell after {WARMUP_S:g} s of warm-up; whole run "
        f"{time.perf_counter() - started:.0f} s.",
        f"Settings: max_batch_size {s.max_batch}, max_latency_ms {s.max_latency_ms} (asgiserve, BentoML), "
        f"wait to fill a batch {s.wait_ms:g} ms (LitServe batch_timeout, Ray batch_wait_timeout_s).",
        "",
    ]
    for g, rs in by_group.items():
        lines += [table(g, rs), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
