"""``asgiserve.depends``: a two-service pipeline in one process and split over two servers, same answers;
``to_async`` / ``to_sync``; ``/readyz`` following remote dependencies; BentoML's errors."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

import asgiserve
from tests.conftest import ROOT, RUNNERS, ServerProc, free_port, wait_ready

MODULE = "tests.apps.pipeline"
TEXTS = ["  A GOOD   day ", "bad  news", "good good GOOD"]


def start_on(port: int, target: str, tmp_path, *extra: str, env: dict[str, str] | None = None) -> ServerProc:
    """Our server for ``target`` on a port chosen beforehand."""
    import os

    log = tmp_path / f"server-{port}.log"
    cmd = [sys.executable, "-m", "asgiserve", target, "--host", "127.0.0.1", "--port", str(port), *extra]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    return ServerProc(proc, port, log)


def answers(url: str, path: str = "/classify", token: str | None = None) -> list[object]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    out = []
    for text in TEXTS:
        r = httpx.post(url + path, json={"text": text}, headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11"])
def test_pipeline_in_one_process(run_server, runner):
    server = run_server(runner, f"{MODULE}:Classify")
    got = answers(server.url)
    assert got[0] == {"cleaned": "a good day", "loud": "A GOOD DAY", "words": 3, "positive": True}
    built = httpx.post(server.url + "/built", timeout=10).json()
    # Built in this worker, once, before the service that depends on it.
    assert built == {"order": ["Preprocess", "Classify"], "same_pid": True}


def test_in_process_dependency_is_built_once_per_worker(run_server):
    server = run_server("asgiserve", f"{MODULE}:Classify", "--workers", "2")
    for _ in range(30):  # fresh connections, for either worker
        with httpx.Client(timeout=10) as c:
            built = c.post(server.url + "/built").json()
            # Built in the worker, once: not before the fork (a worker would then hold four entries).
            assert built["order"] == ["Preprocess", "Classify"] and built["same_pid"] is True, built


def test_to_async_runs_sync_calls_in_the_dependency_threads(run_server):
    server = run_server("asgiserve", f"{MODULE}:Classify")
    out = httpx.post(server.url + "/together", json={"seconds": 0.5}, timeout=10).json()
    # Two 0.5 s calls on Preprocess's two threads at once: about one call's time, not two.
    assert 0.45 <= out["elapsed"] < 0.9, out
    assert len(set(out["threads"])) == 2 and all(n.startswith("asgiserve-Preprocess") for n in out["threads"])


def test_pipeline_over_two_servers(run_server, tmp_path):
    local = answers(run_server("asgiserve", f"{MODULE}:Classify").url)
    port = free_port()
    token = "s3cret"
    env = {"PREPROCESS_URL": f"http://127.0.0.1:{port}"}
    front = run_server("asgiserve", f"{MODULE}:RemoteClassify", "--api-token", token, env=env, ready=False)
    # Up, but not ready while its dependency does not answer.
    deadline = time.monotonic() + 20
    while True:
        try:
            r = httpx.get(front.url + "/readyz", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert r.status_code == 503 and f"http://127.0.0.1:{port}" in r.json()["error"]
    back = start_on(port, f"{MODULE}:Preprocess", tmp_path, "--api-token", token)
    try:
        wait_ready(front.url, front.proc, front.log)  # ready now that Preprocess is: the token was passed on
        assert answers(front.url, token=token) == local
        assert answers(front.url, "/classify_async", token=token) == local
        back.stop()
        deadline = time.monotonic() + 10
        while httpx.get(front.url + "/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "still ready with its dependency gone"
            time.sleep(0.05)
    finally:
        back.stop()


@pytest.mark.parametrize("runner", RUNNERS[:1])
def test_remote_dependency_wrong_token_is_an_error_not_a_hang(run_server, runner, tmp_path):
    port = free_port()
    back = start_on(port, f"{MODULE}:Preprocess", tmp_path, "--api-token", "other")
    try:
        wait_ready(f"http://127.0.0.1:{port}", back.proc, back.log)
        env = {"PREPROCESS_URL": f"http://127.0.0.1:{port}"}
        front = run_server(runner, f"{MODULE}:RemoteClassify", "--api-token", "mine", env=env)
        r = httpx.post(front.url + "/classify", json={"text": "x"}, headers={"authorization": "Bearer mine"}, timeout=20)
        # The remote's refusal is an HTTPError raised in the api: answered with its status, and no hang.
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert httpx.get(front.url + "/livez", timeout=5).status_code == 200
    finally:
        back.stop()


def test_bentoml_errors_and_in_process_use():
    from tests.apps.pipeline import Classify, Preprocess

    dep = Classify.__dict__["pre"]
    with pytest.raises(AttributeError, match="Dependency must be accessed as a class attribute"):
        Classify.pre.clean
    with pytest.raises(NotImplementedError, match="BentoCloud"):
        asgiserve.depends(deployment="ci-iris")
    with pytest.raises(NotImplementedError, match="BentoCloud"):
        asgiserve.depends(url="http://x", cluster="c")
    with pytest.raises(TypeError, match="not a service"):
        asgiserve.depends(object)
    with pytest.raises(ValueError, match="at least one"):
        asgiserve.depends()
    # Outside a server, the dependency is built on first use.
    svc = Classify()
    assert isinstance(svc.pre, Preprocess) and svc.pre is dep.get()
    assert svc.classify(text=" X  good ")["cleaned"] == "x good"
    with pytest.raises(AttributeError, match="no api named 'nope'"):
        svc.pre.to_async.nope
    # to_sync from sync code with no loop running: the async api runs to its end.
    assert svc.pre.to_sync.shout(text="hey") == "HEY"


def test_remote_by_url_alone_needs_to_sync_or_to_async():
    from asgiserve.depends import RemoteService

    remote = RemoteService("http://127.0.0.1:9", None, None)
    with pytest.raises(AttributeError, match=r"to_sync or \.to_async"):
        remote.clean
