"""``@task`` over real sockets, on BentoML's wire: submit, status, get, retry, cancel; files; errors."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

import asgiserve
from tests.conftest import RUNNERS

MODULE = "tests.apps.tasks_svc"
STATUS_KEYS = {"task_id", "status", "created_at", "executed_at"}


@pytest.fixture
def task_server(run_server, runner, tmp_path):
    target = f"{MODULE}:app" if runner == "uvicorn" else f"{MODULE}:TaskSvc"
    return run_server(runner, target, env={"ASGISERVE_TASK_DIR": str(tmp_path / "store")})


def submit(client: httpx.Client, route: str, **kw: object) -> str:
    r = client.post(f"{route}/submit", **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"task_id", "status"} and body["status"] == "in_progress"
    assert re.fullmatch(r"[0-9a-f]{32}", body["task_id"])
    return str(body["task_id"])


def wait_status(client: httpx.Client, route: str, task_id: str, want: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"{route}/status", params={"task_id": task_id})
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] == want:
            return body
        assert time.monotonic() < deadline, f"task {task_id} still {body['status']}, not {want}"
        time.sleep(0.02)


@pytest.mark.parametrize("runner", RUNNERS)
def test_sync_and_async_tasks(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        tid = submit(c, "/add", json={"a": 2, "b": 3})
        st = wait_status(c, "/add", tid, "completed")
        assert set(st) == STATUS_KEYS and st["task_id"] == tid
        assert st["created_at"] <= st["executed_at"]
        got = c.get("/add/get", params={"task_id": tid})
        direct = c.post("/add", json={"a": 2, "b": 3})
        assert (got.status_code, got.headers["content-type"], got.content) == (
            direct.status_code,
            direct.headers["content-type"],
            direct.content,
        )
        assert got.json() == 5

        tid = submit(c, "/v1/echo", json={"text": "hi", "delay": 0.05})
        assert c.get("/v1/echo/status", params={"task_id": tid}).json()["status"] in ("pending", "in_progress")
        wait_status(c, "/v1/echo", tid, "completed")
        assert c.get("/v1/echo/get", params={"task_id": tid}).json()["text"] == "hi"
        # The task is still an api: POST R runs it at once.
        assert c.post("/v1/echo", json={"text": "now"}).json()["text"] == "now"
        assert c.post("/ping").text == "pong"


@pytest.mark.parametrize("runner", RUNNERS)
def test_bad_requests(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        for method, action in [("GET", "status"), ("GET", "get"), ("POST", "retry"), ("PUT", "cancel")]:
            r = c.request(method, f"/add/{action}")
            assert (r.status_code, r.json()) == (400, {"error": "task_id is required"}), action
            r = c.request(method, f"/add/{action}", params={"task_id": "0" * 32})
            assert (r.status_code, r.json()) == (404, {"error": "task_id not found"}), action
        assert c.get("/add/submit").status_code == 405
        assert c.post("/add/status", params={"task_id": "x"}).status_code == 405
        # Invalid input is refused at submission, naming the field, and nothing is stored.
        r = c.post("/add/submit", json={"a": "x"})
        assert r.status_code == 400 and "$.a" in r.json()["error"]
        r = c.post("/add/submit", content=b"a=1", headers={"content-type": "application/xml"})
        assert r.status_code == 415
        # Not finished yet: 400 for get and retry.
        tid = submit(c, "/wait_long", json={"seconds": 30})
        wait_status(c, "/wait_long", tid, "in_progress")
        r = c.get("/wait_long/get", params={"task_id": tid})
        assert (r.status_code, r.json()) == (400, {"error": f"task {tid} is not completed yet"})
        r = c.post("/wait_long/retry", params={"task_id": tid})
        assert (r.status_code, r.json()) == (400, {"error": f"task {tid} is not completed yet"})
        assert c.put("/wait_long/cancel", params={"task_id": tid}).status_code == 200
        assert c.post("/ping").text == "pong"  # and the server goes on serving


@pytest.mark.parametrize("runner", RUNNERS)
def test_file_input_and_output(task_server, tmp_path):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        data = bytes(range(256)) * 300
        tid = submit(c, "/count", files={"f": ("blob.bin", data)}, data={"label": '"big"'})
        wait_status(c, "/count", tid, "completed")
        assert c.get("/count/get", params={"task_id": tid}).json() == {"size": len(data), "label": "big"}

        tid = submit(c, "/render", json={"n": 70_000})
        wait_status(c, "/render", tid, "completed")
        got = c.get("/render/get", params={"task_id": tid})
        direct = c.post("/render", json={"n": 70_000})
        assert got.status_code == 200 and got.content == b"x" * 70_000 == direct.content
        assert got.headers["content-type"] == direct.headers["content-type"]
        assert got.headers["content-disposition"] == direct.headers["content-disposition"] == (
            'attachment; filename="out-70000.txt"'
        )


@pytest.mark.parametrize("runner", RUNNERS)
def test_failed_tasks_replay_the_api_error(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        tid = submit(c, "/boom", json={"why": "bad"})
        wait_status(c, "/boom", tid, "failed")
        got = c.get("/boom/get", params={"task_id": tid})
        assert (got.status_code, got.json()) == (500, {"error": "Internal Server Error"})
        tid = submit(c, "/refuse", json={"n": 7})
        wait_status(c, "/refuse", tid, "failed")
        got = c.get("/refuse/get", params={"task_id": tid})
        direct = c.post("/refuse", json={"n": 7})
        assert (got.status_code, got.content) == (direct.status_code, direct.content) == (
            400,
            b'{"error":"n=7 is not acceptable"}',
        )


@pytest.mark.parametrize("runner", RUNNERS)
def test_cancel(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        # A running async task is cancelled.
        tid = submit(c, "/wait_long", json={"seconds": 30})
        wait_status(c, "/wait_long", tid, "in_progress")
        r = c.put("/wait_long/cancel", params={"task_id": tid})
        assert r.status_code == 200 and r.json()["status"] == "canceled" and set(r.json()) == STATUS_KEYS
        r = c.get("/wait_long/get", params={"task_id": tid})
        assert (r.status_code, r.json()) == (400, {"error": f"task {tid} was canceled"})
        r = c.put("/wait_long/cancel", params={"task_id": tid})
        assert (r.status_code, r.json()) == (400, {"error": f"task {tid} is already canceled"})
        metrics = c.get("/metrics").text
        assert 'asgiserve_task_finished_total{service="TaskSvc",task="wait_long",status="canceled"} 1' in metrics
        # A running sync task runs on in its thread, and its result is dropped.
        tid = submit(c, "/sleep_sync", json={"seconds": 0.6})
        wait_status(c, "/sleep_sync", tid, "in_progress")
        assert c.put("/sleep_sync/cancel", params={"task_id": tid}).json()["status"] == "canceled"
        time.sleep(1.0)
        assert c.get("/sleep_sync/status", params={"task_id": tid}).json()["status"] == "canceled"
        # A finished task cannot be cancelled.
        tid = submit(c, "/add", json={"a": 1})
        wait_status(c, "/add", tid, "completed")
        r = c.put("/add/cancel", params={"task_id": tid})
        assert (r.status_code, r.json()) == (400, {"error": f"task {tid} is already completed"})


@pytest.mark.parametrize("runner", RUNNERS)
def test_retry_runs_the_same_input_again(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        tid = submit(c, "/add", json={"a": 40, "b": 2})
        wait_status(c, "/add", tid, "completed")
        r = c.post("/add/retry", params={"task_id": tid})
        assert r.status_code == 200 and r.json()["status"] == "in_progress"
        new = r.json()["task_id"]
        assert new != tid
        wait_status(c, "/add", new, "completed")
        assert c.get("/add/get", params={"task_id": new}).json() == 42
        # A file input is kept, so a retry has it too.
        tid = submit(c, "/count", files={"f": ("a.txt", b"abc")})
        wait_status(c, "/count", tid, "completed")
        new = c.post("/count/retry", params={"task_id": tid}).json()["task_id"]
        wait_status(c, "/count", new, "completed")
        assert c.get("/count/get", params={"task_id": new}).json() == {"size": 3, "label": ""}


@pytest.mark.parametrize("runner", ["asgiserve"])
def test_schema_and_metrics(task_server):
    with httpx.Client(base_url=task_server.url, timeout=10) as c:
        routes = {r["name"]: r for r in c.get("/schema.json").json()["routes"]}
        assert routes["add"]["is_task"] is True and routes["echo"]["route"] == "/v1/echo"
        assert routes["ping"]["is_task"] is False
        tid = submit(c, "/add", json={"a": 1})
        wait_status(c, "/add", tid, "completed")
        text = c.get("/metrics").text
        assert 'asgiserve_task_submitted_total{service="TaskSvc",task="add"} 1' in text
        assert 'asgiserve_task_finished_total{service="TaskSvc",task="add",status="completed"} 1' in text
        assert 'asgiserve_task_duration_seconds_count{service="TaskSvc",task="add",status="completed"} 1' in text
        assert 'asgiserve_task_running{service="TaskSvc",task="add"} 0' in text
        assert 'asgiserve_task_pending{service="TaskSvc"} 0' in text


def test_pending_in_submission_order(run_server, tmp_path):
    server = run_server("asgiserve", f"{MODULE}:OneAtATime", env={"ASGISERVE_TASK_DIR": str(tmp_path / "s")})
    with httpx.Client(base_url=server.url, timeout=10) as c:
        ids = [submit(c, "/step", json={"i": i, "delay": 0.4}) for i in range(5)]
        states = [c.get("/step/status", params={"task_id": t}).json()["status"] for t in ids]
        assert states[0] == "in_progress" and states[1:] == ["pending"] * 4, states
        for t in ids:
            st = wait_status(c, "/step", t, "completed")
            assert st["executed_at"] is not None
        starts = [c.get("/step/get", params={"task_id": t}).json()["started"] for t in ids]
        assert starts == sorted(starts)
        # One at a time: each started after the one before had run its 0.4 s.
        assert all(b - a >= 0.39 for a, b in itertools.pairwise(starts)), starts


def test_task_declaration_errors():
    with pytest.raises(ValueError, match=r"Async task cannot return a stream\."):

        class S:
            @asgiserve.task
            def gen(self, n: int):  # type: ignore[no-untyped-def]
                yield n

    with pytest.raises(ValueError, match=r"Async task cannot return a stream\."):

        class T:
            @asgiserve.task(route="/x")
            async def agen(self) -> AsyncIterator[str]:
                return None

    with pytest.raises(ValueError, match="route"):
        asgiserve.task(route="nope")


@pytest.mark.parametrize("ttl", ["abc", "0", "-5", "nan"])
def test_bad_ttl_is_a_clear_error(monkeypatch, ttl):
    from tests.apps.tasks_svc import TaskSvc

    monkeypatch.setenv("ASGISERVE_TASK_TTL", ttl)
    with pytest.raises(ValueError, match="ASGISERVE_TASK_TTL must be a positive number of seconds"):
        asgiserve.to_asgi(TaskSvc)


def test_task_routes_are_behind_the_token(run_server, tmp_path):
    server = run_server(
        "asgiserve", f"{MODULE}:TaskSvc", "--api-token", "s3cret", env={"ASGISERVE_TASK_DIR": str(tmp_path / "s")}
    )
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        assert anon.post("/add/submit", json={"a": 1}).status_code == 401
        assert anon.get("/add/status", params={"task_id": "x"}).status_code == 401
    with httpx.Client(base_url=server.url, timeout=10, headers={"authorization": "Bearer s3cret"}) as c:
        tid = submit(c, "/add", json={"a": 1})
        wait_status(c, "/add", tid, "completed")
        assert c.get("/add/get", params={"task_id": tid}).json() == 1
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        assert anon.get("/add/get", params={"task_id": tid}).status_code == 401
