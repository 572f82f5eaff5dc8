"""Which GPUs each worker sees: ``CUDA_VISIBLE_DEVICES`` per worker slot, decided before any worker starts.

Two ways, as the two servers users come from do it:

- ``resources={"gpu": G}`` alone is BentoML's rule: the service gets the first ``G`` visible GPUs and every
  worker of it sees those same ones (a fraction, ``0.5``, shares the first GPU). Like BentoML, a service
  whose ``workers`` is ``"cpu_count"`` is given none.
- ``--devices 0,1`` and/or ``--workers-per-device K`` is LitServe's: ``K`` workers per listed device (all
  visible devices when none are listed), and worker ``i`` gets device ``i mod len(devices)``, round-robin;
  a service asking for ``gpu: G`` with ``G > 1`` gets ``G`` consecutive devices per worker.

Device numbers are positions in what this process sees: the entries of ``CUDA_VISIBLE_DEVICES`` when it is
set (so a launcher's restriction holds, ids or UUIDs alike), else ``0 .. n-1`` for the ``n`` devices
``/dev/nvidiaN``. ``--devices`` or ``--workers-per-device`` naming GPUs that are not there are refused
before anything forks, with a ``DeviceError`` saying so. ``resources`` asking for more GPUs than are visible is BentoML's case of a
service developed on a laptop: a ``DeviceShortage`` that the server logs as a warning before it starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

__all__ = ["DeviceError", "DeviceShortage", "assign", "parse_devices", "visible_gpus"]

ENV = "CUDA_VISIBLE_DEVICES"


class DeviceError(ValueError):
    """The devices asked for cannot be given."""


class DeviceShortage(DeviceError):
    """``resources`` asks for more GPUs than are visible: BentoML warns and starts anyway, and so do we."""


def visible_gpus(environ: Mapping[str, str] = os.environ, dev: str = "/dev") -> list[str]:
    """The GPUs this process may use, as the values a child's ``CUDA_VISIBLE_DEVICES`` names them by."""
    raw = environ.get(ENV)
    if raw is not None:
        found = []
        for entry in (e.strip() for e in raw.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry ("-1": none)
                break
            found.append(entry)
        return found
    try:
        names = os.listdir(dev)
    except OSError:
        return []
    # A container runtime mounts a node's GPU 3 as /dev/nvidia3, yet CUDA numbers what it sees from 0.
    return [str(i) for i in range(sum(1 for m in names if re.fullmatch(r"nvidia\d+", m)))]


def parse_devices(text: str) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; a clear error for anything else."""
    try:
        devices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DeviceError(f"--devices takes device numbers separated by commas, not {text!r}") from None
    if not devices or any(d < 0 for d in devices) or len(set(devices)) != len(devices):
        raise DeviceError(f"--devices takes distinct device numbers 0, 1, ..., not {text!r}")
    return devices


def _gpu_count(resources: Mapping[str, object]) -> float:
    raw = resources.get("gpu", 0)
    try:  # BentoML's own guides write "1" as often as 1
        gpu = float(raw) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else -1.0
    except ValueError:
        gpu = -1.0
    if gpu < 0:
        raise DeviceError(f'resources={{"gpu": ...}} takes a number of GPUs, not {raw!r}')
    if gpu > 1 and gpu != int(gpu):
        raise DeviceError(f"a fraction of a GPU is given below one GPU only, not {gpu!r}")
    return float(gpu)


def _missing(needed: str, visible: Sequence[str]) -> DeviceError:
    seen = f"{len(visible)} visible ({ENV}={','.join(visible)})" if visible else "none visible"
    return DeviceError(f"{needed}, but this machine has {seen}")


def assign(
    resources: Mapping[str, object],
    workers: int,
    *,
    devices: str | None = None,
    per_device: int = 0,
    cpu_count_workers: bool = False,
    visible: Sequence[str] | None = None,
) -> tuple[int, list[str] | None]:
    """``(workers, per-slot CUDA_VISIBLE_DEVICES)``; None where nothing is to be set.

    ``workers`` is 0 when the flag and the service left it open (then ``len(devices) * per_device``
    with devices, else 1).
    """
    gpu = _gpu_count(resources)
    if per_device < 0:
        raise DeviceError(f"--workers-per-device takes a positive number, not {per_device}")
    seen = list(visible_gpus() if visible is None else visible)
    if devices is None and not per_device:
        if not gpu or cpu_count_workers:
            return workers or 1, None
        want = max(1, int(gpu))
        if len(seen) < want:
            short = _missing(f"the service asks for {gpu:g} GPU(s)", seen)
            raise DeviceShortage(f"{short}: its workers start with {ENV} as it is, as BentoML's do")
        return workers or 1, [",".join(seen[:want])] * (workers or 1)
    chosen = parse_devices(devices) if devices is not None else list(range(len(seen)))
    if not chosen:
        raise _missing("--workers-per-device needs a GPU", seen)
    absent = [d for d in chosen if d >= len(seen)]
    if absent:
        raise _missing(f"--devices names GPU {','.join(map(str, absent))}", seen)
    each = max(1, int(gpu))
    if each > len(chosen):
        raise DeviceError(f"the service asks for {each} GPUs per worker, but --devices lists {len(chosen)}")
    count = workers or len(chosen) * max(per_device, 1)
    plan = [
        ",".join(seen[chosen[(slot * each + j) % len(chosen)]] for j in range(each)) for slot in range(count)
    ]
    return count, plan
