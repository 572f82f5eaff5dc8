"""``asgiserve.ray`` without Ray installed: it imports, says what to install on use, and maps the service's
config to Serve's options. The real Ray Serve test is ``make test-ray`` (tests_ray/, its own venv)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

import asgiserve
import asgiserve.ray
from asgiserve.app import to_asgi


@asgiserve.service(resources={"cpu": "500m", "gpu": 1, "memory": "2Gi"}, traffic={"max_concurrency": 8})
class Small:
    @asgiserve.api
    async def echo(self, text: str) -> str:
        return text


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_without_ray_the_error_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"asgiserve.ray needs Ray Serve: pip install 'ray\[serve\]'"):
        asgiserve.ray.deployment(Small)


def test_resources_become_actor_options() -> None:
    assert asgiserve.ray.actor_options({"cpu": "500m", "gpu": 1, "memory": "2Gi"}) == {
        "num_cpus": 0.5,
        "num_gpus": 1.0,
        "memory": 2 * 2**30,
    }
    assert asgiserve.ray.actor_options({"cpu": 2, "memory": "512M", "gpu_type": "nvidia-h100"}) == {
        "num_cpus": 2.0,
        "memory": 512 * 10**6,
    }
    with pytest.raises(ValueError, match="takes bytes or a size"):
        asgiserve.ray.actor_options({"memory": "lots"})


def test_readiness_is_the_apps_own_readyz() -> None:
    app = to_asgi(Small)
    assert asyncio.run(asgiserve.ray.readiness(app)) == 503  # lifespan has not started it
    assert asyncio.run(asgiserve.ray.readiness(app, "/livez")) == 200
