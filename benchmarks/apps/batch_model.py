"""The models of the batching benchmark, shared by every system's app (each imports this file).

- ``synthetic``: a batch of n items costs ``C0 + C1 * n`` seconds of ``time.sleep``, and doubles each
  item. Sleep, not busy work: a GPU model keeps the host CPU free while the device computes (the calling
  thread waits, the GIL released), so the server can read and answer other requests meanwhile, as it
  can here; busy work would instead measure how the server shares one core with the model.
- ``iris``: the ONNX iris classifier of ``examples/iris.onnx`` on onnxruntime (microseconds per batch:
  the serving overhead dominates).

Every batch is counted by appending its size, start and end (``time.monotonic``, one clock for all
processes) to ``BATCH_LOG`` (one ``write`` of a few bytes with O_APPEND, safe from several processes), so
the harness reads the mean batch size the model saw and how busy the model was, the same way for every
system. The costs and limits come from the environment, set by ``benchmarks/batching.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

C0 = float(os.environ.get("BATCH_C0_MS", "8")) / 1000
C1 = float(os.environ.get("BATCH_C1_MS", "0.25")) / 1000
MAX_BATCH = int(os.environ.get("BATCH_MAX", "32"))
MAX_LATENCY_MS = int(os.environ.get("BATCH_MAX_LATENCY_MS", "1000"))
WAIT_S = float(os.environ.get("BATCH_WAIT_MS", "10")) / 1000  # LitServe's and Ray's time to fill a batch
IRIS_PATH = Path(__file__).resolve().parents[2] / "examples" / "iris.onnx"

_log = os.environ.get("BATCH_LOG")
_fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if _log else -1


def record(n: int, start: float, end: float) -> None:
    """Count one batch of ``n`` items that ran from ``start`` to ``end``."""
    if _fd >= 0:
        os.write(_fd, b"%d %.6f %.6f\n" % (n, start, end))


def synthetic(xs: list[float]) -> list[float]:
    """The synthetic model: ``C0 + C1 * len(xs)`` seconds, then each item doubled."""
    start = time.monotonic()
    time.sleep(C0 + C1 * len(xs))
    record(len(xs), start, time.monotonic())
    return [2 * x for x in xs]


class Iris:
    """The iris classifier on one onnxruntime thread."""

    def __init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(IRIS_PATH), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, features: Any) -> np.ndarray:
        """The class index of each row of ``features`` ([N, 4])."""
        start = time.monotonic()
        rows = np.asarray(features, dtype=np.float32).reshape(-1, 4)
        labels = self.session.run(["label"], {"features": rows})[0]
        record(len(rows), start, time.monotonic())
        return labels
