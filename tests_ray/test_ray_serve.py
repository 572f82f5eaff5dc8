"""asgiserve services on a real Ray Serve (a local Ray on 127.0.0.1): ``make test-ray``, in its own venv."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_svc import OnRay

import asgiserve.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("marks")
    os.environ["RAY_TEST_MARKS"] = str(folder)
    here = str(Path(__file__).resolve().parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"RAY_TEST_MARKS": str(folder), "PYTHONPATH": here}},
    )
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = asgiserve.ray.deployment(OnRay, num_replicas=2)
    serve.run(app.bind(), name="onray", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}", folder
    finally:
        serve.shutdown()
        ray.shutdown()


def test_options_come_from_the_service() -> None:
    app = asgiserve.ray.deployment(OnRay, num_replicas=2)
    assert app.max_ongoing_requests == 16
    assert app.ray_actor_options["num_cpus"] == 0.25
    assert app.num_replicas == 2


def test_two_replicas_answer(marks: tuple[str, Path]) -> None:
    url, _ = marks
    pids = {httpx.post(url + "/pid", timeout=30).json() for _ in range(40)}
    assert len(pids) == 2
    assert httpx.get(url + "/readyz", timeout=30).status_code == 200


def test_a_stream_arrives_as_it_is_made(marks: tuple[str, Path]) -> None:
    url, _ = marks
    arrivals: list[tuple[float, str]] = []
    with httpx.stream("POST", url + "/tokens", json={"n": 4}, timeout=30) as r:
        assert r.status_code == 200
        for chunk in r.iter_text():
            arrivals.append((time.monotonic(), chunk))
    assert "".join(c for _, c in arrivals) == "t0 t1 t2 t3 "
    assert len(arrivals) >= 3 and arrivals[-1][0] - arrivals[0][0] > 0.6  # not one body at the end


def test_serves_health_check_is_the_services_readiness(marks: tuple[str, Path]) -> None:
    url, folder = marks
    handle = serve.get_deployment_handle("OnRay", app_name="onray")
    assert handle.check_health.remote().result(timeout_s=30) is None
    (folder / "not-ready").touch()
    try:
        with pytest.raises(Exception, match="OnRay is not ready: /readyz answered 503"):
            handle.check_health.remote().result(timeout_s=30)
        assert httpx.get(url + "/readyz", timeout=30).status_code == 503
    finally:
        (folder / "not-ready").unlink()
    assert httpx.get(url + "/readyz", timeout=30).status_code == 200


def test_shutdown_hooks_run_on_delete(marks: tuple[str, Path]) -> None:
    url, folder = marks
    pids = {httpx.post(url + "/pid", timeout=30).json() for _ in range(40)}
    serve.delete("onray")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(folder.glob("shutdown-*"))) < 2:
        time.sleep(0.2)
    assert {int(p.name.split("-")[1]) for p in folder.glob("shutdown-*")} == pids
