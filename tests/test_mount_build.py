"""Mounted apps inside one process: the app object's build and lifespan steps, with real frameworks."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

import asgiserve
from asgiserve.mount import MountStartupError
from tests.apps import mount_lifespan, mount_routing
from tests.conftest import ROOT


def test_building_twice_rewrites_once():
    first = asgiserve.to_asgi(mount_routing.Frameworks)
    second = asgiserve.to_asgi(mount_routing.Frameworks)
    assert first.openapi["paths"] == second.openapi["paths"]
    params = second.openapi["paths"]["/v1/self/{n}"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["n", "shout"]


def test_same_operation_ids_are_kept_apart():
    inner = FastAPI()

    @inner.post("/predict", operation_id="predict")
    async def predict() -> int:
        return 1

    @asgiserve.service
    @asgiserve.mount_asgi_app(inner, path="/inner", name="inner")
    class Clash:
        @asgiserve.api
        def predict(self) -> int:
            return 0

    doc = asgiserve.to_asgi(Clash).openapi
    validate(doc)
    assert doc["paths"]["/predict"]["post"]["operationId"] == "predict"
    assert doc["paths"]["/inner/predict"]["post"]["operationId"] == "inner_predict"


def test_apps_without_lifespan_are_skipped_with_a_debug_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MOUNT_EVENTS", str(tmp_path / "events.txt"))
    app = asgiserve.to_asgi(mount_lifespan.Lifespans)

    async def cycle() -> None:
        await app.startup()
        await app.shutdown()

    with caplog.at_level(logging.DEBUG, logger="asgiserve"):
        asyncio.run(cycle())
    skipped = [r.getMessage() for r in caplog.records if "does not support the lifespan" in r.getMessage()]
    assert len(skipped) == 2 and all(r.levelno == logging.DEBUG for r in caplog.records)
    assert any("at /raw" in m and "http only" in m for m in skipped), skipped
    assert any("at /plain" in m for m in skipped), skipped
    assert (tmp_path / "events.txt").read_text().splitlines()[-1] == "fastapi shutdown"


def test_startup_failure_names_the_mount(monkeypatch, tmp_path):
    monkeypatch.setenv("MOUNT_EVENTS", str(tmp_path / "events.txt"))
    app = asgiserve.to_asgi(mount_lifespan.BrokenRaw)
    with pytest.raises(
        MountStartupError, match="mounted app 'failing_raw' at /raw failed to start: ValueError: cache"
    ):
        asyncio.run(app.startup())


def test_parent_root_path_is_extended():
    app = asgiserve.to_asgi(mount_routing.Boundaries)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    async def call(path: str) -> dict:
        sent.clear()
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "/base", "headers": []}
        await app(scope, receive, send)
        return json.loads(sent[-1]["body"])

    async def run() -> list[dict]:
        await app.startup()
        try:
            return [await call("/base/api/v2/x"), await call("/base/apiary")]
        finally:
            await app.shutdown()

    first, second = asyncio.run(run())
    assert first == {"app": "api-v2", "root_path": "/base/api/v2", "path": "/base/api/v2/x"}
    assert second == {"app": "root", "root_path": "/base", "path": "/base/apiary"}


def test_fastapi_is_not_imported_for_other_apps():
    code = (
        "import sys, asgiserve, tests.apps.mount_seed_quart as m\n"
        "app = asgiserve.to_asgi(m.MyService)\n"
        "assert app.openapi['paths'] and 'fastapi' not in sys.modules, sorted(sys.modules)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
