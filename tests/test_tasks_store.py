"""The task store under load and across failures: ``--workers 4`` sharing it, a server killed with SIGKILL
and restarted on the same store, and the expiry sweep."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import start

MODULE = "tests.apps.tasks_svc"


def fresh(port: int, method: str, path: str, body: object = None) -> tuple[int, dict]:
    """One request on a new connection, so that any worker may accept it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json", "connection": "close"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


@pytest.mark.timeout(240)
def test_four_workers_share_the_store(tmp_path):
    store = tmp_path / "store"
    server = start("asgiserve", f"{MODULE}:TaskSvc", tmp_path, "--workers", "4", env={"ASGISERVE_TASK_DIR": str(store)})
    try:
        port = server.port
        assert len(children(server.proc.pid)) == 4

        def one(i: int) -> tuple[int, dict]:
            status, sub = fresh(port, "POST", "/v1/echo/submit", {"text": f"t{i}", "delay": random.random() * 0.05})
            assert status == 200, sub
            tid = sub["task_id"]
            deadline = time.monotonic() + 60
            while True:
                status, st = fresh(port, "GET", f"/v1/echo/status?task_id={tid}")
                assert status == 200, st  # any worker answers for any task: none is lost
                if st["status"] == "completed":
                    break
                assert st["status"] in ("pending", "in_progress"), st
                assert time.monotonic() < deadline
                time.sleep(0.01)
            status, result = fresh(port, "GET", f"/v1/echo/get?task_id={tid}")
            assert status == 200, result
            return i, result

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(200)))
        assert sorted(i for i, _ in results) == list(range(200))
        assert all(r["text"] == f"t{i}" for i, r in results)
        runners = {r["pid"] for _, r in results}
        assert len(runners) >= 2 and runners <= set(children(server.proc.pid)), runners
    finally:
        server.stop()
    log = server.output()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]


@pytest.mark.timeout(120)
def test_kill_9_then_restart_on_the_same_store(tmp_path):
    store = tmp_path / "store"
    env = {"ASGISERVE_TASK_DIR": str(store)}
    server = start("asgiserve", f"{MODULE}:OneAtATime", tmp_path, "--workers", "2", env=env)
    port = server.port
    try:
        done = [fresh(port, "POST", "/step/submit", {"i": i, "delay": 0})[1]["task_id"] for i in range(3)]
        for tid in done:
            deadline = time.monotonic() + 10
            while fresh(port, "GET", f"/step/status?task_id={tid}")[1]["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # Two workers, one task each at a time: two run (30 s), the rest wait.
        running = [fresh(port, "POST", "/step/submit", {"i": 10 + i, "delay": 30})[1]["task_id"] for i in range(2)]
        deadline = time.monotonic() + 10
        while any(fresh(port, "GET", f"/step/status?task_id={t}")[1]["status"] != "in_progress" for t in running):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        waiting = [fresh(port, "POST", "/step/submit", {"i": 20 + i, "delay": 0.05})[1]["task_id"] for i in range(4)]
        assert all(fresh(port, "GET", f"/step/status?task_id={t}")[1]["status"] == "pending" for t in waiting)
        for pid in children(server.proc.pid):  # the whole server, workers first: nobody drains
            os.kill(pid, signal.SIGKILL)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()

    again = start("asgiserve", f"{MODULE}:OneAtATime", tmp_path, env=env)
    try:
        port = again.port
        for i, tid in enumerate(done):  # finished results are still there
            status, got = fresh(port, "GET", f"/step/get?task_id={tid}")
            assert status == 200 and got["i"] == i
        for tid in running:  # interrupted: failed, with a reason, never in_progress forever
            status, st = fresh(port, "GET", f"/step/status?task_id={tid}")
            assert st["status"] == "failed" and "interrupted" in st["reason"], st
            status, got = fresh(port, "GET", f"/step/get?task_id={tid}")
            assert status == 500 and "interrupted" in got["error"]
        starts = []
        for tid in waiting:  # pending ones survived the crash and run now, in submission order
            deadline = time.monotonic() + 20
            while fresh(port, "GET", f"/step/status?task_id={tid}")[1]["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            starts.append(fresh(port, "GET", f"/step/get?task_id={tid}")[1]["started"])
        assert starts == sorted(starts)
    finally:
        again.stop()


@pytest.mark.timeout(60)
def test_results_expire(tmp_path):
    store = tmp_path / "store"
    env = {"ASGISERVE_TASK_DIR": str(store), "ASGISERVE_TASK_TTL": "1"}
    server = start("asgiserve", f"{MODULE}:TaskSvc", tmp_path, env=env)
    try:
        port = server.port
        _, sub = fresh(port, "POST", "/render/submit", {"n": 10})
        tid = sub["task_id"]
        deadline = time.monotonic() + 10
        while fresh(port, "GET", f"/render/status?task_id={tid}")[1]["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (store / "files" / f"{tid}.out").exists()
        deadline = time.monotonic() + 10
        while fresh(port, "GET", f"/render/status?task_id={tid}")[0] != 404:
            assert time.monotonic() < deadline, "the result did not expire"
            time.sleep(0.1)
        assert not (store / "files" / f"{tid}.out").exists()
        # A pending or running task does not expire: only finished ones do.
        _, sub = fresh(port, "POST", "/wait_long/submit", {"seconds": 3})
        time.sleep(2)
        assert fresh(port, "GET", f"/wait_long/status?task_id={sub['task_id']}")[1]["status"] == "in_progress"
    finally:
        server.stop()
