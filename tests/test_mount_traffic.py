"""Traffic rules on mounted routes: timeout, max_concurrency, token, errors; the server keeps serving."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.apps.mount_factory import module_server, serve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS, scope="module")

__all__ = ["module_server"]


@pytest.fixture(scope="module")
def limited(module_server, runner):
    return serve(module_server, runner, "tests.apps.mount_traffic:Limited")


def test_timeout_gives_504(limited):
    t0 = time.monotonic()
    r = httpx.get(limited.url + "/m/sleep", params={"seconds": 3}, timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.json() == {"error": "No response within the 0.5 s timeout"}
    assert 0.45 < elapsed < 1.5
    assert httpx.get(limited.url + "/m/sleep", params={"seconds": 0.01}).json() == {"slept": 0.01}


def test_max_concurrency_gives_429_across_mounts_and_apis(limited):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20)) as client:
            calls = [client.get(limited.url + "/m/sleep", params={"seconds": 0.3}) for _ in range(6)]
            calls.append(client.post(limited.url + "/wait", json={"seconds": 0.3}))
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3 and statuses.count(429) == 4, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "max_concurrency" in refused.json()["error"]
    assert httpx.get(limited.url + "/livez").status_code == 200


def test_mounted_app_error_is_a_500_and_counted(limited):
    r = httpx.get(limited.url + "/m/boom")
    assert r.status_code == 500
    assert "mounted route failed" not in r.text
    metrics = httpx.get(limited.url + "/metrics").text
    assert 'endpoint="/m",http_response_code="500"' in metrics.replace(", ", ",")
    assert httpx.get(limited.url + "/m/sleep").status_code == 200


def test_token_guards_mounted_routes(module_server, runner):
    server = serve(module_server, runner, "tests.apps.mount_traffic:Limited", token="s3cret")
    url = server.url
    r = httpx.get(url + "/m/sleep")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json() == {"error": "Missing or invalid API token"}
    assert httpx.get(url + "/m/sleep", headers={"authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(url + "/m/sleep", headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json() == {"slept": 0.0}
    # Probes stay open.
    assert httpx.get(url + "/readyz").status_code == 200
