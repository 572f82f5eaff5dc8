"""Adaptive batching over real HTTP: concurrent calls are merged and each caller gets its own share."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import asgiserve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)


@pytest.fixture
def batched(run_server, runner):
    target = "tests.apps.batched:app" if runner == "uvicorn" else "tests.apps.batched:Batched"
    return run_server(runner, target)


async def _concurrent(url: str, route: str, payloads: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await asyncio.gather(*[client.post(route, json=p) for p in payloads])


def test_concurrent_calls_are_batched(batched, runner):
    payloads = [{"xs": [i, i + 0.5]} for i in range(12)]
    responses = asyncio.run(_concurrent(batched.url, "/square", payloads))
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        assert r.json() == [i * i, (i + 0.5) ** 2]
    batches = httpx.post(batched.url + "/seen").json()
    assert sum(batches) == 24
    # While the first call ran (50 ms), the others queued and ran together: far fewer calls than requests.
    assert len(batches) < 12 and max(batches) > 2 and max(batches) <= 16
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(batched.url + "/metrics").text)}
    sizes = {s.name: s.value for s in families["asgiserve_batch_size"].samples}
    assert sizes["asgiserve_batch_size_sum"] == 24


def test_numpy_batches_split_back(batched):
    payloads = [{"a": [[i, i], [i, i]]} for i in range(6)]
    responses = asyncio.run(_concurrent(batched.url, "/double", payloads))
    for i, r in enumerate(responses):
        assert r.json() == [[2 * i, 2 * i], [2 * i, 2 * i]]


def test_waiting_for_a_running_batch_is_not_latency(batched):
    responses = asyncio.run(_concurrent(batched.url, "/tight", [{"xs": [i]} for i in range(8)]))
    assert [r.status_code for r in responses] == [200] * 8
    assert [r.json() for r in responses] == [[i + 1] for i in range(8)]
    batches = httpx.post(batched.url + "/seen").json()
    assert sum(batches) == 8 and len(batches) < 8


def test_batchable_needs_one_parameter(runner):
    @asgiserve.service
    class Bad:
        @asgiserve.api(batchable=True)
        def f(self, a: list[int], b: list[int]) -> list[int]:
            return a

    with pytest.raises(TypeError, match="exactly one parameter"):
        asgiserve.asgi_app(Bad)
