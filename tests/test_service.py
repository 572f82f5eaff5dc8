"""Declarations: decorator forms, validation at decoration time, and the lifespan in-process."""

from __future__ import annotations

import asyncio

import pytest

import asgiserve
import asgiserve as bentoml
from asgiserve.service import get_spec


def test_bentoml_alias_names():
    for name in (
        "service",
        "api",
        "mount_asgi_app",
        "get_current_service",
        "asgi_app",
        "SyncHTTPClient",
        "AsyncHTTPClient",
    ):
        assert hasattr(bentoml, name), name


def test_service_bare_and_configured_keep_the_class():
    @asgiserve.service
    class A:
        """Doc of A."""

        @asgiserve.api
        def f(self, x: int = 1) -> int:
            return x

    @asgiserve.service(
        traffic={"timeout": 3, "max_concurrency": 8}, threads=4, workers=2, resources={"cpu": "2"}
    )
    class B:
        pass

    assert A.__name__ == "A" and A.__doc__ == "Doc of A." and A().f(2) == 2
    spec = get_spec(B)
    assert (spec.timeout, spec.max_concurrency, spec.threads, spec.workers) == (3.0, 8, 4, 2)
    assert spec.resources == {"cpu": "2"} and get_spec(A).timeout == 60.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"traffic": {"timeout": -1}}, "traffic.timeout"),
        ({"traffic": {"max_concurrency": 0}}, "traffic.max_concurrency"),
        ({"traffic": {"bogus": 1}}, "bogus"),
        ({"threads": "4"}, "threads"),
        ({"workerz": 2}, "workerz"),
    ],
)
def test_service_config_errors(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        asgiserve.service(**kwargs)(type("S", (), {}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": "no-slash"}, "route"),
        ({"name": "not an identifier"}, "name"),
        ({"batchable": "yes"}, "batchable"),
        ({"batch_dim": -1}, "batch_dim"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_latency_ms": -5}, "max_latency_ms"),
    ],
)
def test_api_option_errors(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        asgiserve.api(**kwargs)


def test_api_needs_self():
    with pytest.raises(TypeError, match="self"):
        asgiserve.api(lambda: None)


def test_duplicate_routes_are_refused():
    @asgiserve.service
    class Dup:
        @asgiserve.api(route="/x")
        def a(self) -> str:
            return "a"

        @asgiserve.api(route="/x")
        def b(self) -> str:
            return "b"

    with pytest.raises(ValueError, match="/x"):
        asgiserve.to_asgi(Dup)


def test_not_a_service():
    with pytest.raises(TypeError, match="not a service"):
        asgiserve.to_asgi(type("Plain", (), {}))


def test_get_current_service_after_startup():
    @asgiserve.service
    class Live:
        def __init__(self) -> None:
            self.token = object()

    app = asgiserve.to_asgi(Live)

    async def boot() -> object:
        await app.startup()
        return asgiserve.get_current_service()

    assert asyncio.run(boot()) is app.instance
    assert isinstance(app.instance, Live)
