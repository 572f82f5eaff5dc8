"""``@service``'s options, as BentoML defines them: which keys exist, which asgiserve acts on, and the
``ServiceSpec`` they are checked into at decoration time (see ``service.py``).

Every key of BentoML's ``ServiceConfig`` and of its decorator's own keywords is accepted. Acted on:
``name``, ``traffic``, ``threads``, ``workers`` (``"cpu_count"`` too), ``resources`` (kept), ``description``,
``path_prefix``, ``envs``, ``endpoints``, ``http`` (``host``, ``port``, ``cors``) and ``ssl`` (read by the
server's TLS settings). The rest are kept in ``ServiceSpec.config`` and named once in a debug log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TypedDict

__all__ = ["ServiceOptions", "ServiceSpec", "TrafficOptions", "check_positive", "join_paths", "make_spec"]

ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
# BentoML's @service keywords, then the keys of its ServiceConfig.
_BENTOML_KEYWORDS = frozenset(
    {"name", "image", "description", "path_prefix", "envs", "labels", "cmd", "service_class"}
)
_CONFIG_KEYS = frozenset(
    {
        "traffic", "extra_ports", "backlog", "max_runner_connections", "runner_connection", "resources",
        "workers", "replicate_process", "threads", "metrics", "logging", "ssl", "http", "grpc",
        "runner_probe", "tracing", "monitoring", "endpoints", "open_inference",
    }
)  # fmt: skip
_SERVICE_KEYS = _BENTOML_KEYWORDS | _CONFIG_KEYS
# What asgiserve acts on; ``ssl`` is read by the server's TLS settings.
_ACTED_ON = frozenset(
    {"name", "description", "path_prefix", "envs", "traffic", "threads", "workers", "resources", "http",
     "endpoints", "ssl", "open_inference"}
)  # fmt: skip
_TRAFFIC_KEYS = frozenset({"timeout", "max_concurrency", "concurrency", "external_queue"})
_HTTP_KEYS = frozenset({"host", "port", "proxy_port", "cors", "response"})
_ENDPOINT_KEYS = frozenset({"livez", "readyz"})
_ENV_KEYS = frozenset({"name", "value", "stage"})


@dataclass
class ServiceSpec:
    """Validated configuration of a service class."""

    name: str
    timeout: float = 60.0
    max_concurrency: int | None = None
    threads: int = 1
    workers: int = 1
    resources: dict[str, object] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)
    description: str | None = None
    path_prefix: str = ""  # "" or "/v1": before every api, mount and probe path
    envs: list[dict[str, str]] = field(default_factory=list)
    livez: str = "/livez"
    readyz: str = "/readyz"
    cors: dict[str, object] | None = None  # CORS options (``cors.cors_options``) when enabled
    host: str | None = None  # ``http.host`` / ``http.port``: the CLI's defaults
    port: int | None = None
    # ``add_asgi_middleware``: (class, options), the first added outermost, as in BentoML.
    middlewares: list[tuple[Callable[..., object], dict[str, object]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # accepted keys asgiserve does not act on


# Seen by type checkers only: building TypedDict classes would add to the cost of ``import asgiserve``.
if TYPE_CHECKING:

    class TrafficOptions(TypedDict, total=False):
        """The ``traffic`` option of ``@service``."""

        timeout: float
        max_concurrency: int
        concurrency: int
        external_queue: bool

    class ServiceOptions(TypedDict, total=False):
        """The keyword options of ``@service``: BentoML's, see the module docstring."""

        traffic: TrafficOptions
        threads: int
        workers: int | str
        resources: Mapping[str, object]
        name: str
        description: str
        path_prefix: str
        envs: list[dict[str, str]]
        endpoints: Mapping[str, str]
        http: Mapping[str, object]
        ssl: Mapping[str, object]
        image: object
        labels: Mapping[str, str]
        cmd: list[str]
        service_class: object
        logging: object
        extra_ports: list[int]
        backlog: int
        max_runner_connections: int
        runner_connection: Mapping[str, object]
        replicate_process: bool
        metrics: Mapping[str, object]
        grpc: Mapping[str, object]
        runner_probe: Mapping[str, object]
        tracing: Mapping[str, object]
        monitoring: Mapping[str, object]
        open_inference: bool


def check_positive(what: str, value: object, *, allow_float: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive integer (or number)."""
    kinds = (int, float) if allow_float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "number" if allow_float else "integer"
        raise ValueError(f"{what} must be a positive {kind}, got {value!r}")


def join_paths(prefix: str, path: str) -> str:
    """``prefix`` + ``path`` with one ``/`` between them (BentoML's ``join_paths``)."""
    joined = prefix.rstrip("/") + "/" + path.lstrip("/") if path else prefix
    return joined or "/"


def _workers(value: object) -> int:
    if value == "cpu_count":
        # The CPUs this process may run on (taskset, cpusets), which os.cpu_count() ignores.
        affinity = getattr(os, "sched_getaffinity", None)
        return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    check_positive("workers", value)
    assert isinstance(value, int)
    return value


def _envs(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise TypeError(f"envs must be a list of {{'name': ..., 'value': ...}} dicts, got {value!r}")
    out = []
    for env in value:
        if not isinstance(env, dict) or not isinstance(env.get("name"), str) or not env["name"]:
            raise TypeError(f"each of envs must be a dict with a 'name', got {env!r}")
        bad = set(env) - _ENV_KEYS
        if bad:
            raise TypeError(f"envs entry {env['name']!r} got unknown key(s) {sorted(bad)}")
        if env.get("stage", "all") not in ("all", "build", "runtime"):
            raise ValueError(f"envs entry {env['name']!r}: stage must be all, build or runtime")
        if not isinstance(env.get("value", ""), str):
            raise TypeError(f"envs entry {env['name']!r}: value must be a string")
        out.append(dict(env))
    return out


def _keys(what: str, value: object, known: frozenset[str]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    bad = set(value) - known
    if bad:
        raise TypeError(f"{what} got unknown key(s) {sorted(bad)}; known: {sorted(known)}")
    return value


def _http(spec: ServiceSpec, http: dict[str, object]) -> None:
    from .cors import cors_options

    host = http.get("host")
    if host is not None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"http.host must be an address string, got {host!r}")
        spec.host = host
    port = http.get("port")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"http.port must be a port number, got {port!r}")
        spec.port = port
    cors = http.get("cors")
    if cors is not None:
        if not isinstance(cors, dict):
            raise TypeError(f"http.cors must be a dict, got {type(cors).__name__}")
        spec.cors = cors_options(cors)


def make_spec(cls: type, config: ServiceOptions) -> ServiceSpec:
    """Check ``config`` (``@service``'s keywords) into the ``ServiceSpec`` of ``cls``."""
    unknown = set(config) - _SERVICE_KEYS
    if unknown:
        raise TypeError(f"@service got unknown option(s) {sorted(unknown)}; known: {sorted(_SERVICE_KEYS)}")
    traffic = _keys("traffic", config.get("traffic") or {}, _TRAFFIC_KEYS)
    spec = ServiceSpec(name=config.get("name") or cls.__name__, resources=dict(config.get("resources") or {}))
    spec.config = dict(config)
    if traffic.get("timeout") is not None:
        check_positive("traffic.timeout", traffic["timeout"], allow_float=True)
        spec.timeout = float(traffic["timeout"])  # type: ignore[arg-type]
    if traffic.get("max_concurrency") is not None:
        check_positive("traffic.max_concurrency", traffic["max_concurrency"])
        spec.max_concurrency = traffic["max_concurrency"]  # type: ignore[assignment]
    if config.get("threads") is not None:
        check_positive("threads", config["threads"])
        spec.threads = config["threads"]
    if config.get("workers") is not None:
        spec.workers = _workers(config["workers"])
    description = config.get("description")
    if description is not None and not isinstance(description, str):
        raise TypeError(f"description must be a string, got {description!r}")
    spec.description = description
    prefix = config.get("path_prefix") or ""
    if not isinstance(prefix, str) or not ROUTE_RE.match(join_paths("/", prefix)):
        raise ValueError(f"path_prefix must be a URL path such as '/v1', got {prefix!r}")
    spec.path_prefix = join_paths("/", prefix).rstrip("/")
    spec.livez, spec.readyz = join_paths(spec.path_prefix, "/livez"), join_paths(spec.path_prefix, "/readyz")
    endpoints = _keys("endpoints", config.get("endpoints") or {}, _ENDPOINT_KEYS)
    for key, path in endpoints.items():
        if not isinstance(path, str) or not ROUTE_RE.match(path):
            raise ValueError(f"endpoints.{key} must be a path starting with '/', got {path!r}")
        setattr(spec, key, path)
    if config.get("envs") is not None:
        spec.envs = _envs(config["envs"])
    _http(spec, _keys("http", config.get("http") or {}, _HTTP_KEYS))
    spec.ignored = sorted(k for k in config if k not in _ACTED_ON)
    http_unused = sorted(k for k in (config.get("http") or {}) if k not in ("host", "port", "cors"))
    spec.ignored += [f"http.{k}" for k in http_unused]
    if spec.ignored:
        import logging  # here: ``import asgiserve`` does not load logging

        logging.getLogger("asgiserve").debug(
            "service %s: accepted, not acted on by asgiserve: %s", spec.name, ", ".join(spec.ignored)
        )
    return spec
