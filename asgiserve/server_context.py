"""Who this process is in a deployment, the BentoML way: ``server_context.worker_index`` and ``service_name``.

``worker_index`` is this worker's slot, ``0 .. workers-1``: the supervisor sets it (and the
``ASGISERVE_WORKER_INDEX`` variable, which child processes inherit) before a worker imports anything of
the service, and a replacement started for a worker that died gets the slot of the one it replaces, so
``CUDA_VISIBLE_DEVICES = str(worker_index())`` stays the same device across restarts. A process that is
not one of several workers (``--workers 1``, an embedded server, a test client) is worker 0.
``service_name`` is the name of the service this process serves, or None before one is loaded (and for
a plain ASGI app).
"""

from __future__ import annotations

import os

__all__ = ["ENV_WORKER_INDEX", "get_worker_index", "service_name", "set_worker", "worker_index"]

ENV_WORKER_INDEX = "ASGISERVE_WORKER_INDEX"


def _from_env() -> int:
    raw = os.environ.get(ENV_WORKER_INDEX, "")
    return int(raw) if raw.isdigit() else 0


worker_index: int = _from_env()
"""This worker's slot, ``0 .. workers-1`` (0 in a single process)."""

service_name: str | None = None
"""The name of the service served by this process, None until one is loaded."""


def get_worker_index() -> int:
    """This worker's slot, ``0 .. workers-1`` (``asgiserve.worker_index()``)."""
    return worker_index


def set_worker(index: int) -> None:
    """Make this process worker ``index``: here and in ``ASGISERVE_WORKER_INDEX`` for its children."""
    global worker_index
    worker_index = index
    os.environ[ENV_WORKER_INDEX] = str(index)
