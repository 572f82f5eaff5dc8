"""Ray Serve: ``asgiserve.ray.deployment(Svc)`` is a Serve deployment serving the service's ASGI app.

The app is built on each replica by a builder handed to ``serve.ingress`` (never pickled: a service holds
models, locks and thread pools), so ``__init__``, lifespan and the hooks run once per replica, and
shutdown hooks when Serve stops the replica. The deployment's options come from the service where Serve
has one: ``max_ongoing_requests`` from ``traffic.max_concurrency``, ``ray_actor_options`` from ``resources``
(``cpu`` -> ``num_cpus``, ``gpu`` -> ``num_gpus``, ``memory`` -> ``memory`` in bytes), and Serve's health
check asks the app's own ``/readyz``. Streams pass through as Serve streams any ASGI response.

``import asgiserve.ray`` works without Ray installed; ``deployment`` then raises a ``RuntimeError`` saying
what to install.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["actor_options", "deployment", "readiness"]

# This replica's app of each deployment, by deployment name. Module-level, so that the builder and the
# health check (pickled apart, by value, to the replica) meet in the replica's copy of this module.
_APPS: dict[str, Any] = {}

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.I)
_UNIT = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def _bytes(value: object) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = _MEMORY.match(str(value))
    if match is None:
        raise ValueError(f'resources={{"memory": ...}} takes bytes or a size like "2Gi", not {value!r}')
    return int(float(match.group(1)) * _UNIT[(match.group(2) or "").lower()])


def actor_options(resources: Mapping[str, object]) -> dict[str, object]:
    """Ray actor options for a service's ``resources`` (``cpu``, ``gpu``, ``memory``; the rest ignored)."""
    out: dict[str, object] = {}
    if "cpu" in resources:
        cpu = resources["cpu"]
        out["num_cpus"] = (
            float(cpu[:-1]) / 1000 if isinstance(cpu, str) and cpu.endswith("m") else float(str(cpu))
        )
    if "gpu" in resources:
        out["num_gpus"] = float(str(resources["gpu"]))
    if "memory" in resources:
        out["memory"] = _bytes(resources["memory"])
    return out


async def readiness(app: Any, path: str = "/readyz") -> int:
    """The status the ASGI ``app`` answers to ``GET path``, asked in process."""
    status = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(str(message["status"]))

    await app(scope, receive, send)
    return status


def _build(svc: type, key: str) -> Any:
    from .app import to_asgi

    app = _APPS[key] = to_asgi(svc)
    return app


async def _check(key: str, path: str) -> None:
    app = _APPS.get(key)
    if app is not None and (status := await readiness(app, path)) != 200:
        raise RuntimeError(f"{key} is not ready: {path} answered {status}")


def deployment(
    svc: type,
    *,
    name: str | None = None,
    num_replicas: int | str | None = None,
    autoscaling_config: Mapping[str, object] | None = None,
    max_ongoing_requests: int | None = None,
    ray_actor_options: Mapping[str, object] | None = None,
) -> Any:
    """A Ray Serve deployment of the service ``svc`` (``.bind()`` it and ``serve.run`` the result)."""
    try:
        from ray import serve
    except ImportError:
        raise RuntimeError("asgiserve.ray needs Ray Serve: pip install 'ray[serve]'") from None
    from .service import get_spec

    spec = get_spec(svc)
    key = name or spec.name

    def build() -> Any:  # runs on the replica (a plain function: what serve.ingress takes for a builder)
        return _build(svc, key)

    options: dict[str, Any] = {"name": key}
    if num_replicas is not None:
        options["num_replicas"] = num_replicas
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
    limit = max_ongoing_requests if max_ongoing_requests is not None else spec.max_concurrency
    if limit is not None:
        options["max_ongoing_requests"] = limit
    actor = {**actor_options(spec.resources), **dict(ray_actor_options or {})}
    if actor:
        options["ray_actor_options"] = actor

    readyz = spec.readyz

    class Ingress:
        async def check_health(self) -> None:
            """Serve's health check: the app's own readiness."""
            await _check(key, readyz)

    Ingress.__name__ = Ingress.__qualname__ = f"{spec.name}Ingress"
    return serve.deployment(**options)(serve.ingress(build)(Ingress))
