"""Array benchmark: a 1M-element float32 array in and out, as JSON, msgpack, .npy and the Open Inference
Protocol's binary tensors on asgiserve, against the same array as JSON through BentoML and FastAPI, and a
bare uvloop protocol that only copies the bytes back (the floor).

Each system serves an api that returns the array it was sent (``apps/asgiserve_arrays.py``,
``apps/bento_arrays.py``, ``apps/fastapi_arrays.py``, ``apps/raw_echo.py``), one worker pinned apart from
this process. The request bodies are built once, before timing, so the figure is the server's part and the
wire's: one keep-alive connection, requests one at a time, the answer read whole; the median round trip of
``--calls`` calls after one warm-up. The last answer of each is decoded and compared with the array sent.

    python benchmarks/arrays.py [--calls 9] [--size 1000000] [--only asgiserve bentoml fastapi raw]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asgiserve.tensors import decode_msgpack, decode_npy, encode_msgpack, encode_npy
from benchmarks import peers
from benchmarks.harness import HOST, Row, Server, cpu_sets, free_port
from benchmarks.report import Target

GROUP = "Arrays: 1M float32 in and out (round trip, one connection)"
OURS = {
    "json": "asgiserve, JSON",
    "msgpack": "asgiserve, msgpack",
    "npy": "asgiserve, .npy",
    "oip": "asgiserve, Open Inference binary",
}
BENTO = "BentoML (bentoml serve), JSON"
FASTAPI = "FastAPI + pydantic on uvicorn, JSON"
RAW = "floor: uvloop protocol copying the bytes back"

TARGETS = [
    t
    for kind in ("msgpack", "npy", "oip")
    for t in (
        Target(f"Arrays {OURS[kind]} >= 10x asgiserve JSON", GROUP, "ratio", OURS["json"], 10.0, OURS[kind]),
        Target(f"Arrays {OURS[kind]} >= 20x BentoML", GROUP, "ratio", BENTO, 20.0, OURS[kind]),
        # Within 3x of the floor: the floor's time over ours at least 1/3.
        Target(f"Arrays {OURS[kind]} within 3x of the floor", GROUP, "ratio", RAW, 1 / 3, OURS[kind]),
    )
]

Check = Callable[[http.client.HTTPResponse, bytes], np.ndarray]
# (method path, headers, body, how to read the answer back into an array)
Call = tuple[str, dict[str, str], bytes, Check]


def _from_json(resp: http.client.HTTPResponse, body: bytes) -> np.ndarray:
    return np.asarray(orjson.loads(body), dtype=np.float32)


def _from_msgpack(resp: http.client.HTTPResponse, body: bytes) -> np.ndarray:
    return np.asarray(decode_msgpack(body))


def _from_npy(resp: http.client.HTTPResponse, body: bytes) -> np.ndarray:
    return decode_npy(body)


def _from_oip(resp: http.client.HTTPResponse, body: bytes) -> np.ndarray:
    size = int(resp.getheader("inference-header-content-length") or len(body))
    head = json.loads(body[:size])
    out = head["outputs"][0]
    return np.frombuffer(body[size:], dtype=np.float32).reshape(out["shape"])


def calls(arr: np.ndarray) -> dict[str, Call]:
    """The request of each encoding, built once."""
    js = orjson.dumps({"x": arr}, option=orjson.OPT_SERIALIZE_NUMPY)
    mp = {"content-type": "application/msgpack", "accept": "application/msgpack"}
    npy = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(arr.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": arr.nbytes},
                }
            ],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        }
    )
    oip = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}
    return {
        "json": ("/echo", {"content-type": "application/json"}, js, _from_json),
        "msgpack": ("/echo", mp, encode_msgpack({"x": arr}), _from_msgpack),
        "npy": ("/echo", npy, encode_npy(arr), _from_npy),
        "oip": ("/v2/models/echo/infer", oip, head + arr.tobytes(), _from_oip),
    }


def time_calls(port: int, call: Call, n: int, arr: np.ndarray) -> tuple[float, str]:
    """(median seconds per round trip, a note: empty, or what was wrong with the answer)."""
    path, headers, body, check = call
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    times: list[float] = []
    try:
        for i in range(n + 1):
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if i:
                times.append(time.perf_counter() - t0)
            if resp.status != 200:
                return statistics.median(times or [0.0]), f"HTTP {resp.status}: {data[:200]!r}"
        got = check(resp, data)
        if got.shape != arr.shape or not np.array_equal(got.astype(np.float32), arr):
            return statistics.median(times), f"wrong answer: shape {got.shape}"
    finally:
        conn.close()
    return statistics.median(times), ""


def _fastapi(port: int) -> list[str]:
    return [
        peers.PY, "-m", "uvicorn", "--host", HOST, "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "fastapi_arrays:app",
    ]  # fmt: skip


def _systems() -> list[tuple[str, Callable[[int], list[str]], str, list[str], str | None]]:
    """(name, command, readiness path, encodings, its virtualenv)."""
    bento = str(peers.venv_python("bentoml").parent / "bentoml")
    return [
        ("asgiserve", peers._own("asgiserve_arrays:Arrays", "httptools"), "/readyz", list(OURS), None),
        ("bentoml", lambda p: [bento, "serve", "bento_arrays:Arrays", "--host", HOST, "--port", str(p)],
         "/readyz", ["json"], "bentoml"),
        ("fastapi", _fastapi, "/openapi.json", ["json"], None),
        ("raw", lambda p: [peers.PY, "raw_echo.py", str(p)], "/", ["npy"], None),
    ]  # fmt: skip


def _label(name: str, kind: str) -> str:
    return OURS[kind] if name == "asgiserve" else {"bentoml": BENTO, "fastapi": FASTAPI, "raw": RAW}[name]


def run(quick: bool, only: list[str] | None = None, n: int | None = None, size: int = 1_000_000) -> list[Row]:
    """The suite entry point (``benchmarks/run.py``): each system once, every encoding it speaks."""
    n = n or (3 if quick else 9)
    arr = np.random.default_rng(0).random(size, dtype=np.float32)
    built = calls(arr)
    logs = Path(tempfile.mkdtemp(prefix="bench-arrays-"))
    server_cpus, client_cpus = cpu_sets()
    rows: list[Row] = []
    for name, cmd, ready, kinds, venv in _systems():
        if only and name not in only:
            continue
        why = peers.ensure_venv(venv) if venv else None
        if why is not None:
            rows += [Row(GROUP, _label(name, k), None, "ms", False, note=why, flagged=True) for k in kinds]
            continue
        port = free_port()
        server = Server(cmd(port), port, server_cpus, logs / f"arrays-{name}.log")
        before = os.sched_getaffinity(0)
        try:
            server.wait_ready(ready, 90)
            os.sched_setaffinity(0, client_cpus)
            for kind in kinds:
                seconds, note = time_calls(port, built[kind], n, arr)
                rows.append(
                    Row(
                        GROUP,
                        _label(name, kind),
                        seconds * 1000,
                        "ms",
                        higher_is_better=False,
                        subject=kind == "npy" and name == "asgiserve",
                        extra={"MB/s each way": arr.nbytes / seconds / 1e6},
                        note=note,
                        flagged=bool(note),
                    )
                )
        except Exception as exc:  # a failed start or run is a flagged row, not a failed suite
            note = f"{type(exc).__name__}: {exc}"[:300]
            rows += [Row(GROUP, _label(name, k), None, "ms", False, note=note, flagged=True) for k in kinds]
        finally:
            os.sched_setaffinity(0, before)
            server.stop()
    return rows


def main() -> None:
    """Run from the command line and print the rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=9)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--only", nargs="*", choices=["asgiserve", "bentoml", "fastapi", "raw"])
    args = ap.parse_args()
    rows = run(False, args.only, args.calls, args.size)
    by = {r.name: r for r in rows}
    for row in rows:
        value = "n/a" if row.value is None else f"{row.value:,.2f} {row.unit}"
        mbs = row.extra.get("MB/s each way")
        rate = f", {mbs:,.0f} MB/s each way" if isinstance(mbs, float) else ""
        print(f"{row.name}: {value}{rate} {row.note}".rstrip(), flush=True)
    for t in TARGETS:
        subj, peer = by.get(t.subject), by.get(t.peer)
        if subj and peer and subj.value and peer.value:
            r = peer.value / subj.value
            print(f"{t.text}: {r:.2f}x ({'met' if r >= t.bound else 'MISSED'})")


if __name__ == "__main__":
    main()
