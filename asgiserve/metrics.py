"""Request metrics in the Prometheus text format (exposition format 0.0.4), kept in plain dicts.

Recording is on the hot path, so it is a dict lookup, a bisect and three additions; cumulative
histogram buckets and the text are only computed when ``/metrics`` is scraped.

Under ``--workers N`` each worker's counts are its own; ``snapshot`` copies them into a ``Snapshot`` and
``absorb`` adds one in, so that the worker answering a scrape renders its live counts plus the others'
last snapshots (``peers``, set by ``server/shared_metrics.py``). Recording does not change for that.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable

import msgspec

__all__ = ["Metrics", "Snapshot"]

DEFAULT_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# Task runs last seconds to hours, not milliseconds.
TASK_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Snapshot(msgspec.Struct):
    """One worker's counts at one moment, as written to its file (counters, histogram rows, gauges)."""

    pid: int = 0
    slot: int = 0
    series: list[tuple[str, int, list[float]]] = []
    batch: list[tuple[str, int, int]] = []
    in_progress: dict[str, int] = {}
    submitted: dict[str, int] = {}
    running: dict[str, int] = {}
    runs: list[tuple[str, str, list[float]]] = []


def _add_rows(into: list[float], row: list[float]) -> None:
    if len(into) == len(row):  # another bucket layout cannot be added bucket by bucket
        for i, v in enumerate(row):
            into[i] += v


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request count and latency histogram by endpoint and status, and an in-progress gauge by endpoint."""

    def __init__(self, service: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.service = service
        self.buckets = buckets
        self.first_bucket = buckets[0] if buckets else float("inf")
        # (endpoint, status) -> [count, sum_seconds, per-bucket counts..., +Inf count]
        self._series: dict[tuple[str, int], list[float]] = {}
        self.in_progress: dict[str, int] = {}
        self._batch: dict[str, list[int]] = {}  # endpoint -> [sum of sizes, number of batches]
        # Tasks (only rendered for a service that has some): by task name.
        self.task_names: tuple[str, ...] = ()
        self.tasks_submitted: dict[str, int] = {}
        self.tasks_running: dict[str, int] = {}
        self.tasks_pending = 0  # in the whole store, as last counted by this worker
        self._task_runs: dict[tuple[str, str], list[float]] = {}  # (name, status) -> histogram row
        # A prefork worker's view of the other workers' counts: their last snapshots (and the retired ones).
        self.peers: Callable[[], list[Snapshot]] | None = None

    def snapshot(self) -> Snapshot:
        """A copy of this process's counts."""
        return Snapshot(
            pid=os.getpid(),
            series=[(e, s, list(row)) for (e, s), row in list(self._series.items())],
            batch=[(e, t, c) for e, (t, c) in list(self._batch.items())],
            in_progress=dict(self.in_progress),
            submitted=dict(self.tasks_submitted),
            running=dict(self.tasks_running),
            runs=[(n, s, list(row)) for (n, s), row in list(self._task_runs.items())],
        )

    def absorb(self, snap: Snapshot, gauges: bool = True) -> None:
        """Add ``snap``'s counters and histograms into these (and its gauges, unless ``gauges`` is False)."""
        width = len(self.buckets) + 3
        for endpoint, status, row in snap.series:
            _add_rows(self._series.setdefault((endpoint, status), [0.0] * width), row)
        for endpoint, total, count in snap.batch:
            mine = self._batch.setdefault(endpoint, [0, 0])
            mine[0] += total
            mine[1] += count
        for name, n in snap.submitted.items():
            self.tasks_submitted[name] = self.tasks_submitted.get(name, 0) + n
        for name, outcome, run_row in snap.runs:
            _add_rows(self._task_runs.setdefault((name, outcome), [0.0] * (len(TASK_BUCKETS) + 3)), run_row)
        if gauges:
            for endpoint, n in snap.in_progress.items():
                self.in_progress[endpoint] = self.in_progress.get(endpoint, 0) + n
            for name, n in snap.running.items():
                self.tasks_running[name] = self.tasks_running.get(name, 0) + n

    def task_submitted(self, name: str) -> None:
        """Count one task submitted (or resubmitted by a retry)."""
        self.tasks_submitted[name] = self.tasks_submitted.get(name, 0) + 1

    def observe_task(self, name: str, status: str, seconds: float) -> None:
        """Record one task run that ended with ``status`` (completed, failed, canceled) after ``seconds``."""
        row = self._task_runs.get((name, status))
        if row is None:
            row = self._task_runs[(name, status)] = [0.0] * (len(TASK_BUCKETS) + 3)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(TASK_BUCKETS, seconds)] += 1

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        row = self._series.get((endpoint, status))
        if row is None:
            row = self._series[(endpoint, status)] = [0.0] * (len(self.buckets) + 3)
        row[0] += 1
        row[1] += seconds
        # Most requests land in the first bucket: one comparison instead of a bisection.
        row[2 if seconds <= self.first_bucket else 2 + bisect_left(self.buckets, seconds)] += 1

    def observe_batch(self, endpoint: str, size: int) -> None:
        """Record the size of one adaptive batch."""
        row = self._batch.get(endpoint)
        if row is None:
            row = self._batch[endpoint] = [0, 0]
        row[0] += size
        row[1] += 1

    def render(self) -> bytes:
        """The metrics in Prometheus text format: of every worker when there are several."""
        if self.peers is None:
            return self._render()
        total = Metrics(self.service, self.buckets)
        total.task_names = self.task_names
        total.tasks_pending = self.tasks_pending  # already the whole store's
        total.absorb(self.snapshot())
        for snap in self.peers():
            total.absorb(snap)
        return total._render()

    def _render(self) -> bytes:
        svc = _label(self.service)
        lines = [
            "# HELP asgiserve_request_total Requests answered, by endpoint and status.",
            "# TYPE asgiserve_request_total counter",
        ]
        series = sorted(self._series.items())
        for (endpoint, status), row in series:
            lines.append(
                f'asgiserve_request_total{{service="{svc}",endpoint="{_label(endpoint)}",'
                f'http_response_code="{status}"}} {int(row[0])}'
            )
        lines += [
            "# HELP asgiserve_request_duration_seconds Time from request start to response end.",
            "# TYPE asgiserve_request_duration_seconds histogram",
        ]
        for (endpoint, status), row in series:
            base = f'service="{svc}",endpoint="{_label(endpoint)}",http_response_code="{status}"'
            cumulative = 0
            for bound, count in zip(self.buckets, row[2:]):
                cumulative += int(count)
                lines.append(f'asgiserve_request_duration_seconds_bucket{{{base},le="{bound}"}} {cumulative}')
            lines.append(f'asgiserve_request_duration_seconds_bucket{{{base},le="+Inf"}} {int(row[0])}')
            lines.append(f"asgiserve_request_duration_seconds_sum{{{base}}} {row[1]!r}")
            lines.append(f"asgiserve_request_duration_seconds_count{{{base}}} {int(row[0])}")
        lines += [
            "# HELP asgiserve_request_in_progress Requests being handled now, by endpoint.",
            "# TYPE asgiserve_request_in_progress gauge",
        ]
        for endpoint, n in sorted(self.in_progress.items()):
            lines.append(
                f'asgiserve_request_in_progress{{service="{svc}",endpoint="{_label(endpoint)}"}} {n}'
            )
        if self._batch:
            lines += [
                "# HELP asgiserve_batch_size Sizes of adaptive batches, by endpoint.",
                "# TYPE asgiserve_batch_size summary",
            ]
            for endpoint, (total, count) in sorted(self._batch.items()):
                lab = f'service="{svc}",endpoint="{_label(endpoint)}"'
                lines.append(f"asgiserve_batch_size_sum{{{lab}}} {total}")
                lines.append(f"asgiserve_batch_size_count{{{lab}}} {count}")
        if self.task_names:
            lines += self._render_tasks(svc)
        return ("\n".join(lines) + "\n").encode()

    def _render_tasks(self, svc: str) -> list[str]:
        lines = [
            "# HELP asgiserve_task_submitted_total Tasks submitted, by task.",
            "# TYPE asgiserve_task_submitted_total counter",
        ]
        for name in self.task_names:
            lab = f'service="{svc}",task="{_label(name)}"'
            lines.append(f"asgiserve_task_submitted_total{{{lab}}} {self.tasks_submitted.get(name, 0)}")
        lines += [
            "# HELP asgiserve_task_running Tasks running now (in every worker), by task.",
            "# TYPE asgiserve_task_running gauge",
        ]
        for name in self.task_names:
            lab = f'service="{svc}",task="{_label(name)}"'
            lines.append(f"asgiserve_task_running{{{lab}}} {self.tasks_running.get(name, 0)}")
        lines += [
            "# HELP asgiserve_task_pending Tasks of the service waiting to run (the whole store).",
            "# TYPE asgiserve_task_pending gauge",
            f'asgiserve_task_pending{{service="{svc}"}} {self.tasks_pending}',
            "# HELP asgiserve_task_finished_total Task runs ended, by task and status.",
            "# TYPE asgiserve_task_finished_total counter",
        ]
        runs = sorted(self._task_runs.items())
        for (name, status), row in runs:
            lab = f'service="{svc}",task="{_label(name)}",status="{status}"'
            lines.append(f"asgiserve_task_finished_total{{{lab}}} {int(row[0])}")
        lines += [
            "# HELP asgiserve_task_duration_seconds Time a task ran, by task and status.",
            "# TYPE asgiserve_task_duration_seconds histogram",
        ]
        for (name, status), row in runs:
            lab = f'service="{svc}",task="{_label(name)}",status="{status}"'
            cumulative = 0
            for bound, count in zip(TASK_BUCKETS, row[2:]):
                cumulative += int(count)
                lines.append(f'asgiserve_task_duration_seconds_bucket{{{lab},le="{bound}"}} {cumulative}')
            lines.append(f'asgiserve_task_duration_seconds_bucket{{{lab},le="+Inf"}} {int(row[0])}')
            lines.append(f"asgiserve_task_duration_seconds_sum{{{lab}}} {row[1]!r}")
            lines.append(f"asgiserve_task_duration_seconds_count{{{lab}}} {int(row[0])}")
        return lines
