"""``/metrics`` under ``--workers N``: one scrape covers every worker, restarted ones included."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start
from tests.test_lifecycle import children, wait_for

TARGET = "tests.apps.scale_svc:Counted"
_LAG = 1.6  # snapshots are written once a second; a little more to be sure every worker wrote one


def _send(url: str, n: int, clients: int = 6) -> set[int]:
    """POST /pid ``n`` times over ``clients`` fresh connections at once; the pids that answered."""

    def batch(k: int) -> list[int]:
        with httpx.Client(base_url=url, timeout=10) as client:
            return [client.post("/pid").json() for _ in range(k)]

    sizes = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return {pid for pids in pool.map(batch, sizes) for pid in pids}


def _totals(url: str) -> dict[str, float]:
    """Sum of each sample name over every series in one scrape (parsed by prometheus_client)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") == "/pid" or sample.name.startswith("asgiserve_request_total"):
                key = sample.name + (f"{{le={sample.labels['le']}}}" if "le" in sample.labels else "")
                sums[key] = sums.get(key, 0) + sample.value
    return sums


@pytest.mark.parametrize("sockets", [[], ["--reuse-port"]], ids=["shared-socket", "reuse-port"])
def test_three_workers_add_up(tmp_path: Path, sockets: list[str]) -> None:
    server = start("asgiserve", TARGET, tmp_path, "--workers", "3", "--no-access-log", *sockets)
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 3)
        pids = _send(server.url, 3000)
        assert len(pids) >= 2  # the load did reach several workers
        time.sleep(_LAG)
        for _ in range(6):  # fresh connections: the scrapes land on whichever worker accepts
            totals = _totals(server.url)
            assert totals["asgiserve_request_total"] == 3000
            assert totals["asgiserve_request_duration_seconds_count"] == 3000
            assert totals["asgiserve_request_duration_seconds_bucket{le=+Inf}"] == 3000
            assert totals["asgiserve_request_in_progress"] == 0
    finally:
        assert server.stop() == 0


def test_a_killed_worker_keeps_its_counts(tmp_path: Path) -> None:
    server = start("asgiserve", TARGET, tmp_path, "--workers", "3", "--no-access-log")
    try:
        assert wait_for(lambda: len(children(server.proc.pid)) == 3)
        first = children(server.proc.pid)
        answered = _send(server.url, 600)
        time.sleep(_LAG)
        victim = next(iter(answered & first))
        os.kill(victim, signal.SIGKILL)
        assert wait_for(
            lambda: len(children(server.proc.pid)) == 3 and victim not in children(server.proc.pid)
        )
        after = _send(server.url, 300)
        time.sleep(_LAG)
        for _ in range(4):
            assert _totals(server.url)["asgiserve_request_total"] == 900
        # The replacement holds the victim's slot and counts on from there.
        victim_slot_pids = children(server.proc.pid) - first
        assert len(victim_slot_pids) == 1 and victim not in after
    finally:
        assert server.stop() == 0


def test_snapshots_and_retired_counts_add_up(tmp_path: Path) -> None:
    """Two workers' files, one retired: the scrape of slot 0 adds all three, each exactly once."""
    from asgiserve.metrics import Metrics
    from asgiserve.server import shared_metrics

    def worker(n: int) -> Metrics:
        m = Metrics("svc")
        m.task_names = ("job",)
        for _ in range(n):
            m.observe("/a", 200, 0.002)
            m.task_submitted("job")
            m.observe_task("job", "completed", 0.5)
        m.observe_batch("/a", n)
        m.in_progress["/a"] = 1
        return m

    live, other = worker(1), worker(10)
    mine = shared_metrics.attach(type("App", (), {"metrics": live})(), str(tmp_path), 0)
    assert mine is not None
    theirs = shared_metrics.SharedMetrics(str(tmp_path), 1, other)
    theirs.write()
    # Slot 1's worker dies; its pid is this process's (the snapshot says so), the fold is by slot and pid.
    shared_metrics.retire(str(tmp_path), 1, os.getpid())
    assert not (tmp_path / "slot-1.json").exists()
    replacement = worker(100).snapshot()
    replacement.pid, replacement.slot = os.getpid() + 1, 1
    (tmp_path / "slot-1.json").write_bytes(msgspec.json.encode(replacement))
    families = {f.name: f for f in text_string_to_metric_families(live.render().decode())}
    value = {s.name: s.value for f in families.values() for s in f.samples if "le" not in s.labels}
    assert value["asgiserve_request_total"] == 111
    assert value["asgiserve_task_submitted_total"] == 111
    assert value["asgiserve_task_finished_total"] == 111
    assert value["asgiserve_batch_size_sum"] == 111 and value["asgiserve_batch_size_count"] == 3
    assert value["asgiserve_request_in_progress"] == 2  # the live one and the replacement; not the dead one
    # A second fold of the dead worker adds nothing; the replacement's own exit folds it in once.
    shared_metrics.retire(str(tmp_path), 1, os.getpid())
    assert (tmp_path / "slot-1.json").exists()
    shared_metrics.retire(str(tmp_path), 1, os.getpid() + 1)
    again = {
        s.name: s.value for f in text_string_to_metric_families(live.render().decode()) for s in f.samples
    }
    assert again["asgiserve_request_total"] == 111
