"""The services of BentoML's guides (services, lifecycle hooks) run with only the import changed
(``tests/apps/sdk_guides.py``), with the output the guides say they print."""

from __future__ import annotations

import httpx
import pytest

from tests.apps.mount_factory import serve
from tests.conftest import start
from tests.test_lifecycle import children, wait_for

DEPLOY_1 = "Do some preparation work, running only once."
DEPLOY_2 = "Do more preparation work if needed, also running only once."
INIT = "This runs on Service startup, once for each worker, so it runs 4 times."
# The servers' stdout is a file, so block-buffered: what workers print must still come out.
BUFFERED = {"PYTHONUNBUFFERED": ""}


def lines(text: str, wanted: set[str]) -> list[str]:
    return [line for line in text.splitlines() if line in wanted]


def test_deployment_hooks_guide(tmp_path):
    # workers=4 in the guide's config: deployment hooks print once, __init__ four times.
    server = start("asgiserve", "tests.apps.sdk_guides:HookService", tmp_path, env=BUFFERED)
    assert wait_for(lambda: len(children(server.proc.pid)) == 4)
    assert httpx.post(server.url + "/predict", json={"text": "hi"}).text == "hi"
    assert server.stop() == 0
    seen = lines(server.output(), {DEPLOY_1, DEPLOY_2, INIT})
    # BentoML's order: hooks by name (additional_setup before prepare), both before any worker.
    assert seen == [DEPLOY_2, DEPLOY_1] + [INIT] * 4


def test_startup_hooks_guide(tmp_path):
    server = start("asgiserve", "tests.apps.sdk_guides:StartupHookService", tmp_path, "--workers", "2", env=BUFFERED)
    assert httpx.post(server.url + "/predict", json={"text": "q"}).text == "db:q"
    assert server.stop() == 0
    out = server.output()
    assert out.count("Global preparation, runs once before workers start.") == 1
    assert out.count("Initializing resources for worker.") == 2
    assert out.count("Async resource initialization for worker.") == 2


@pytest.mark.parametrize("runner", ["asgiserve", "asgiserve-h11", "uvicorn"])
def test_shutdown_hooks_guide(run_server, runner):
    # uvicorn ends by re-raising SIGTERM, which loses buffered output: it runs unbuffered.
    extra = {"env": {"PYTHONUNBUFFERED": "1"} if runner == "uvicorn" else BUFFERED}
    server = serve(run_server, runner, "tests.apps.sdk_guides:ShutdownHookService", **extra)
    assert httpx.post(server.url + "/predict", json={"text": "x"}).text == "x"
    server.stop()
    done = lines(server.output(), {"Cleanup actions on Service shutdown.", "Async cleanup actions on Service shutdown."})
    per_worker = ["Async cleanup actions on Service shutdown.", "Cleanup actions on Service shutdown."]
    assert done == per_worker * (1 if runner == "uvicorn" else 4)


def test_health_check_hooks_guide(run_server):
    server = serve(run_server, "asgiserve", "tests.apps.sdk_guides:HealthHookService")
    assert httpx.get(server.url + "/readyz").status_code == 200


@pytest.mark.parametrize("runner", ["asgiserve", "uvicorn"])
def test_services_guide(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_guides:Summarization")
    r = httpx.post(server.url + "/custom/url/name", json={"text": "One. Two."})
    assert r.text == "One"
    server = serve(run_server, runner, "tests.apps.sdk_guides:MyService", ready=False)
    assert wait_for(lambda: _ok(server.url + "/v1/readyz"), 20), server.output()
    assert httpx.post(server.url + "/v1/summarize", json={"text": "abc"}).text == "ABC"
    assert httpx.get(server.url + "/v1/chat/hello").json() == "chat says hello"


def test_services_guide_envs(run_server, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    server = serve(run_server, "asgiserve", "tests.apps.sdk_guides:VLLMService", env={"HF_TOKEN": "hf_x"})
    assert httpx.post(server.url + "/generate", json={}).text.endswith("(1)")
    # As in BentoML, a declared variable without a value must come from the environment.
    missing = serve(run_server, "asgiserve", "tests.apps.sdk_guides:VLLMService", ready=False)
    assert missing.proc.wait(20) != 0 and "'HF_TOKEN' is required but not set" in missing.output()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
