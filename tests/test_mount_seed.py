"""The "ASGI integration" document's examples, run as written (import changed), on every runner."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.apps.mount_factory import module_server, serve
from tests.conftest import ROOT, RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS, scope="module")

__all__ = ["module_server"]

# The examples import ``transformers``; the stand-in needs no download and is on the path only here.
STUBS = os.pathsep.join([str(ROOT), str(ROOT / "examples"), str(ROOT / "tests" / "apps" / "mount_stubs")])


def seed(module_server, runner, module: str, cls: str):
    return serve(module_server, runner, f"tests.apps.{module}:{cls}", env={"PYTHONPATH": STUBS})


def test_fastapi_inside_and_outside(module_server, runner):
    url = seed(module_server, runner, "mount_seed_fastapi", "MyService").url
    r = httpx.get(url + "/v1/hello")
    assert r.status_code == 200 and r.json() == "Hello MyService"
    r = httpx.get(url + "/v1/hello1")
    assert r.status_code == 200 and r.json() == "Hello MyService"
    # ``self`` is injected, not a query parameter FastAPI would ask for.
    assert "self" not in httpx.get(url + "/v1/openapi.json").text
    assert httpx.get(url + "/hello").status_code == 404


def test_fastapi_summarization(module_server, runner):
    url = seed(module_server, runner, "mount_seed_fastapi_summary", "Summarization").url
    inside = httpx.get(url + "/v1/hello-inside")
    assert inside.json() == "Hello MyService. You can access the Service instance inside the class."
    outside = httpx.get(url + "/v1/hello-outside")
    assert outside.json() == "Hello MyService. You can access the Service instance outside the class."
    r = httpx.post(url + "/summarize", json={"text": "Cats purr. Dogs bark."})
    assert r.status_code == 200 and r.text == "Cats purr."
    r = httpx.post(url + "/summarize")
    assert r.text.startswith("Breaking News: In an astonishing turn of events")
    paths = httpx.get(url + "/docs.json").json()["paths"]
    assert {"/summarize", "/v1/hello-inside", "/v1/hello-outside"} <= set(paths)


def test_quart(module_server, runner):
    url = seed(module_server, runner, "mount_seed_quart", "MyService").url
    r = httpx.get(url + "/v1/hello")
    assert r.status_code == 200 and r.text == "Hello, MyService"


def test_quart_summarization(module_server, runner):
    url = seed(module_server, runner, "mount_seed_quart_summary", "Summarization").url
    assert httpx.get(url + "/v1/hello").text == "Hello, MyService"
    r = httpx.post(url + "/summarize", json={"text": "One. Two."})
    assert r.status_code == 200 and r.text == "One."
    schema = httpx.get(url + "/schema.json").json()
    assert schema["paths"]["/v1"]["mounted"] is True
    assert [route["name"] for route in schema["routes"]] == ["summarize"]


def test_custom_prefix(module_server, runner):
    url = seed(module_server, runner, "mount_seed_prefix", "MyService").url
    r = httpx.get(url + "/fastapi/hello")
    assert r.status_code == 200 and r.json() == "Hello MyService"
    assert httpx.get(url + "/v1/hello").status_code == 404
