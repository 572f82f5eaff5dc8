"""BentoML's lifecycle hooks over real server processes: on_deployment once before the fork, on_startup and
on_shutdown per worker in BentoML's order around __init__ and mounted apps, __is_ready__ / __is_alive__
turning the probes to 503, and a failing hook failing the start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.apps.mount_factory import serve
from tests.conftest import RUNNERS, start
from tests.test_lifecycle import children, wait_for

# BentoML's order: hooks of a kind by name (dir() order), deployment before any worker, startup hooks
# after __init__ and before mounted apps start, shutdown hooks after mounted apps stop.
WORKER_START = ["init", "startup-a", "startup-b", "mount-startup"]
WORKER_STOP = ["mount-shutdown", "shutdown-a", "shutdown-b"]


def read_log(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(step, int(pid)) for step, pid in (line.split() for line in path.read_text().splitlines())]


def steps_of(log: list[tuple[str, int]], pid: int) -> list[str]:
    return [step for step, p in log if p == pid]


def test_hooks_across_two_workers(tmp_path):
    log = tmp_path / "hooks.log"
    server = start("asgiserve", "tests.apps.sdk_hooks:Hooked", tmp_path, env={"SDK_HOOK_LOG": str(log)})
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    workers = children(server.proc.pid)
    assert wait_for(lambda: sum(s == "mount-startup" for s, _ in read_log(log)) == 2)
    r = httpx.post(server.url + "/started_hooks", timeout=5)
    assert r.json() == ["a", "b"]
    assert httpx.get(server.url + "/sub/hello", timeout=5).text == "hello from the mount"
    assert server.stop(signal.SIGTERM) == 0
    entries = read_log(log)
    # Deployment hooks: once, in the parent, before any worker started.
    assert entries[:2] == [("deploy-a", server.proc.pid), ("deploy-b", server.proc.pid)]
    assert sum(s.startswith("deploy") for s, _ in entries) == 2
    assert {p for _, p in entries[2:]} == workers
    for pid in workers:
        assert steps_of(entries, pid) == WORKER_START + WORKER_STOP


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_hooks_with_one_worker(tmp_path, sig):
    log = tmp_path / "hooks.log"
    server = start("asgiserve", "tests.apps.sdk_hooks:OneWorker", tmp_path, env={"SDK_HOOK_LOG": str(log)})
    assert children(server.proc.pid) == set()
    assert server.stop(sig) == 0
    pid = server.proc.pid
    assert steps_of(read_log(log), pid) == ["deploy-a", "deploy-b", *WORKER_START, *WORKER_STOP]


def test_hooks_under_uvicorn(run_server, tmp_path):
    log = tmp_path / "hooks.log"
    server = serve(run_server, "uvicorn", "tests.apps.sdk_hooks:OneWorker", env={"SDK_HOOK_LOG": str(log)})
    assert httpx.post(server.url + "/started_hooks", timeout=5).json() == ["a", "b"]
    server.stop()  # uvicorn ends by re-raising SIGTERM: its status is -15 after a clean shutdown
    # No parent to run them in: the deployment hooks run once, at the start of the process.
    steps = [s for s, _ in read_log(log)]
    assert steps == ["deploy-a", "deploy-b", *WORKER_START, *WORKER_STOP]


@pytest.mark.parametrize("runner", RUNNERS)
def test_probes_follow_is_ready_and_is_alive(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_hooks:Probed")
    url = server.url
    assert httpx.get(url + "/readyz").status_code == 200
    state = httpx.post(url + "/set_state", json={"ready": False}).json()
    r = httpx.get(url + "/readyz")
    assert r.status_code == 503
    assert r.json() == {"error": "Service is not ready because .__is_ready__() returns False."}
    assert httpx.get(url + "/livez").status_code == 200
    httpx.post(url + "/set_state", json={"ready": True, "alive": False})
    assert httpx.get(url + "/readyz").status_code == 200
    r = httpx.get(url + "/livez")
    assert r.status_code == 503 and "__is_alive__" in r.json()["error"]
    assert httpx.get(url + "/healthz").status_code == 503
    state = httpx.post(url + "/set_state", json={}).json()
    assert httpx.get(url + "/livez").status_code == 200
    # The sync __is_ready__ ran in a thread, never on the event loop's.
    assert state["probe_threads"] and state["loop"] not in state["probe_threads"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_failing_startup_hook_fails_the_start(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_hooks:FailingStartup", ready=False)
    code = server.proc.wait(20)
    assert code != 0
    assert "cache cluster unreachable at startup" in server.output()


def test_failing_deployment_hook_starts_no_worker(tmp_path):
    log = tmp_path / "hooks.log"
    server = start(
        "asgiserve", "tests.apps.sdk_hooks:FailingDeployment", tmp_path, env={"SDK_HOOK_LOG": str(log)}, ready=False
    )
    assert server.proc.wait(20) == 3
    assert "model registry refused the download" in server.output()
    assert [s for s, _ in read_log(log)] == ["deploy-attempt"]


def test_a_slow_sync_probe_does_not_stall_apis(tmp_path):
    # __is_ready__ runs in a thread: an api answers while a probe is still thinking.
    import threading

    server = start("asgiserve", "tests.apps.sdk_slow_probe:SlowProbe", tmp_path, ready=False)
    try:
        assert wait_for(lambda: _status(server.url + "/livez") == 200, 20)
        probe = threading.Thread(target=lambda: httpx.get(server.url + "/readyz", timeout=10))
        probe.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert httpx.post(server.url + "/ping", timeout=5).text == "pong"
        assert time.monotonic() - t0 < 0.5
        probe.join(10)
    finally:
        server.stop()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0
