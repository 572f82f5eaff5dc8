"""Adaptive batching over real HTTP: concurrent calls are merged and each caller gets its own share."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import asgiserve
from asgiserve.batching import Batcher
from asgiserve.errors import ServiceUnavailable
from asgiserve.metrics import Metrics
from tests.conftest import RUNNERS


@pytest.fixture(params=RUNNERS)
def runner(request: pytest.FixtureRequest) -> str:
    return request.param


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
        asgiserve.to_asgi(Bad)


def test_max_latency_counts_from_the_first_time_a_call_is_left_out():
    # Batches of 2 taking 100 ms, six calls at once, 150 ms allowed behind full batches: calls 2 and 3, left
    # out of the first batch, run at 100 ms; calls 4 and 5, left out of the first two, are shed at 200 ms.
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.1)
        return [x * 10 for x in items]

    async def main() -> list[object]:
        batcher = Batcher(run, endpoint="/f", metrics=Metrics("svc"), max_batch_size=2, max_latency_ms=150)
        calls = [batcher.submit([i]) for i in range(6)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:4] == [[0], [10], [20], [30]]
    assert all(isinstance(r, ServiceUnavailable) for r in results[4:]), results


def _recording(batches: list[list[int]], seconds: float = 0.05):
    async def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        await asyncio.sleep(seconds)
        if -1 in items:
            raise ValueError("bad item")
        return [x * 10 for x in items]

    return run


def test_a_cancelled_caller_leaves_the_batch():
    batches: list[list[int]] = []

    async def main() -> list[object]:
        batcher = Batcher(
            _recording(batches), endpoint="/f", metrics=Metrics("svc"), max_batch_size=8, max_latency_ms=5000
        )
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.01)  # [0] runs alone; the next three queue behind it
        waiting = [asyncio.ensure_future(batcher.submit([i])) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        waiting[1].cancel()
        return await asyncio.gather(first, *waiting, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == [0] and results[1] == [10] and results[3] == [30]
    assert isinstance(results[2], asyncio.CancelledError)
    assert batches == [[0], [1, 3]]


def test_a_failing_batch_fails_only_its_own_calls():
    batches: list[list[int]] = []

    async def main() -> list[object]:
        batcher = Batcher(
            _recording(batches), endpoint="/f", metrics=Metrics("svc"), max_batch_size=2, max_latency_ms=5000
        )
        calls = [asyncio.ensure_future(batcher.submit([0]))]
        await asyncio.sleep(0.01)
        calls += [asyncio.ensure_future(batcher.submit(x)) for x in ([1], [-1], [2], [3])]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert batches == [[0], [1, -1], [2, 3]]
    assert results[0] == [0] and results[3:] == [[20], [30]]
    assert all(isinstance(r, ValueError) for r in results[1:3]), results


def test_an_oversized_call_runs_alone_and_nothing_jumps_ahead():
    batches: list[list[int]] = []

    async def main() -> list[object]:
        batcher = Batcher(
            _recording(batches), endpoint="/f", metrics=Metrics("svc"), max_batch_size=4, max_latency_ms=5000
        )
        calls = [asyncio.ensure_future(batcher.submit([0]))]
        await asyncio.sleep(0.01)
        calls += [asyncio.ensure_future(batcher.submit(x)) for x in ([1, 2], [3, 4, 5, 6, 7], [8], [9])]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    # [8] would fit beside [1, 2], but the five-item call came first: it waits its turn, then runs alone.
    assert batches == [[0], [1, 2], [3, 4, 5, 6, 7], [8, 9]]
    assert results[2] == [30, 40, 50, 60, 70] and results[4] == [90]


class _CountingLoop(asyncio.SelectorEventLoop):
    """An event loop whose futures count how often ``done()`` is asked: the work of scanning the queue."""

    asked = 0

    def create_future(self) -> asyncio.Future:
        loop = self

        class Counted(asyncio.Future):
            def done(self) -> bool:
                loop.asked += 1
                return super().done()

        return Counted(loop=self)


def test_taking_a_batch_does_not_rescan_the_queue():
    # 400 one-item calls queued behind batches of one: a batch taken by scanning every queued call asks
    # each waiting future about 400 * 400 / 2 times in all; taking from the front asks a few times each.
    calls = 400

    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        return items

    async def main() -> list[object]:
        batcher = Batcher(run, endpoint="/f", metrics=Metrics("svc"), max_batch_size=1, max_latency_ms=60_000)
        return await asyncio.gather(*[batcher.submit([i]) for i in range(calls)])

    loop = _CountingLoop()
    try:
        assert loop.run_until_complete(main()) == [[i] for i in range(calls)]
    finally:
        loop.close()
    assert loop.asked < 10 * calls, loop.asked
