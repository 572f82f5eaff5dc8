"""Metrics that add up across prefork workers: a snapshot file per worker slot in a directory of the supervisor.

Each worker keeps counting in its own plain dicts (no lock, no shared memory on the request path) and, once
a second on the server's tick, writes a snapshot of them to ``slot-<index>.json`` (written aside, then
renamed, so a reader sees a whole file). The worker answering ``/metrics`` adds its live counts to the other
slots' snapshots and to ``retired.json``, where the supervisor folds the last snapshot of every worker that
exited, so a restarted slot's counts are not lost. Other workers' counts may therefore lag by up to a
second; those a worker recorded after its last snapshot are lost when it is killed with SIGKILL (a worker
that stops normally writes a last snapshot on its way out).

``retired.json`` also names, per slot, the pid it last folded: the supervisor writes it before it removes
that slot's file, and a reader reads the slot files first, so a worker's counts are never added twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import msgspec

from ..metrics import Metrics, Snapshot

__all__ = ["Retired", "SharedMetrics", "attach", "create_dir", "remove_dir", "retire"]

logger = logging.getLogger("asgiserve")
_RETIRED = "retired.json"


class Retired(msgspec.Struct):
    """The counts of workers that exited, and the pid last folded for each slot."""

    total: Snapshot = msgspec.field(default_factory=Snapshot)
    folded: dict[int, int] = {}


_encode = msgspec.json.Encoder().encode
_snapshot = msgspec.json.Decoder(Snapshot).decode
_retired = msgspec.json.Decoder(Retired).decode


def _slot_path(directory: str, slot: int) -> str:
    return os.path.join(directory, f"slot-{slot}.json")


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _read_retired(directory: str) -> Retired:
    try:
        with open(os.path.join(directory, _RETIRED), "rb") as fh:
            return _retired(fh.read())
    except FileNotFoundError:
        return Retired()


class SharedMetrics:
    """A worker's side: write its snapshot on each tick, read the others' when ``/metrics`` is scraped."""

    def __init__(self, directory: str, slot: int, metrics: Metrics) -> None:
        self.directory = directory
        self.slot = slot
        self.metrics = metrics
        self.path = _slot_path(directory, slot)

    def write(self) -> None:
        """Write this worker's snapshot (a failure is logged: the scrape then lags, serving goes on)."""
        snap = self.metrics.snapshot()
        snap.slot = self.slot
        try:
            _write(self.path, _encode(snap))
        except OSError as exc:
            logger.warning("Could not write the metrics snapshot %s: %s", self.path, exc)

    def peers(self) -> list[Snapshot]:
        """The other slots' last snapshots and the retired counts (never this worker's own file)."""
        found: list[Snapshot] = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            if not (name.startswith("slot-") and name.endswith(".json")) or name == f"slot-{self.slot}.json":
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as fh:
                    found.append(_snapshot(fh.read()))
            except (OSError, msgspec.DecodeError):  # removed meanwhile, or not ours: nothing to add
                continue
        try:
            retired = _read_retired(self.directory)
        except (OSError, msgspec.DecodeError) as exc:
            logger.warning("Could not read the retired metrics: %s", exc)
            return found
        found = [s for s in found if retired.folded.get(s.slot) != s.pid]
        found.append(retired.total)
        return found


def attach(app: object, directory: str, slot: int) -> SharedMetrics | None:
    """Make ``app``'s metrics (if it has asgiserve's) render every worker's counts; None for other apps."""
    metrics = getattr(app, "metrics", None)
    if not isinstance(metrics, Metrics):
        return None
    shared = SharedMetrics(directory, slot, metrics)
    metrics.peers = shared.peers
    return shared


def retire(directory: str, slot: int, pid: int) -> None:
    """Fold the last snapshot of worker ``pid`` (slot ``slot``), which exited, into the retired counts."""
    path = _slot_path(directory, slot)
    try:
        with open(path, "rb") as fh:
            snap = _snapshot(fh.read())
    except FileNotFoundError:
        return  # it died before its first snapshot
    except (OSError, msgspec.DecodeError) as exc:
        logger.warning("Could not read the metrics of worker %d: %s", pid, exc)
        return
    if snap.pid != pid:
        return
    try:
        retired = _read_retired(directory)
        total = Metrics("")
        total.absorb(retired.total)
        total.absorb(snap, gauges=False)  # what a dead worker had in progress is over
        retired = Retired(total.snapshot(), {**retired.folded, slot: pid})
        retired.total.pid = 0
        _write(os.path.join(directory, _RETIRED), _encode(retired))
        os.remove(path)
    except (OSError, msgspec.DecodeError) as exc:
        logger.warning("Could not keep the metrics of worker %d: %s", pid, exc)


def create_dir() -> str:
    """A new private directory for the workers' snapshots."""
    return tempfile.mkdtemp(prefix="asgiserve-metrics-")


def remove_dir(directory: str) -> None:
    """Remove the snapshots' directory once every worker is gone."""
    shutil.rmtree(directory, ignore_errors=True)
