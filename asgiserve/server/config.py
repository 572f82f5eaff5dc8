"""Server configuration: every setting with its default, its flag and its ``ASGISERVE_*`` variable.

``Config`` is plain data; ``load_app`` turns the ``module:Attr`` target into the ASGI app to serve (a
``@service`` class becomes ``to_asgi(cls)``, any other ASGI 3 callable is served as is); ``build_app``
does the second half for an object already at hand (``asgiserve.serve(Svc)``).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..limits import DEFAULT_LIMITS as _L
from ..limits import Limits

__all__ = ["Config", "build_app", "load_app"]


@dataclass
class Config:
    """Everything the server and its workers need to know."""

    target: str = ""
    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 0  # 0: the service's ``workers`` config, else 1
    http: str = "auto"
    log_level: str = "info"
    log_format: str = "text"  # or "json"
    access_log: bool = True
    api_token: str | None = None
    # TLS, with uvicorn's flags and meanings (``tls.py``). None: the service's ``ssl`` config, else
    # uvicorn's default (PROTOCOL_TLS_SERVER, CERT_NONE, "TLSv1" ciphers).
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_version: int | None = None
    ssl_cert_reqs: int | None = None
    ssl_ca_certs: str | None = None
    ssl_ciphers: str | None = None
    allow_private_urls: bool = False
    open_inference: bool = False  # the Open Inference Protocol at /v2 (``ASGISERVE_OPEN_INFERENCE``)
    app_dir: str = "."
    root_path: str = ""
    max_header_size: int = _L.max_header_size
    max_headers: int = _L.max_headers
    max_url_size: int = _L.max_url_size
    max_body_size: int = _L.max_body_size
    keep_alive_timeout: float = _L.keep_alive_timeout
    header_timeout: float = _L.header_timeout
    body_timeout: float = _L.body_timeout
    body_min_rate: float = _L.body_min_rate
    max_connections: int = _L.max_connections
    graceful_timeout: float = 30.0
    backlog: int = 2048
    # Scaling out (``devices.py``, ``workers.py``): GPUs per worker, and one listening socket per worker.
    devices: str | None = None  # "0,1": positions in the visible GPUs, LitServe's round-robin
    workers_per_device: int = 0
    reuse_port: bool = False

    def limits(self) -> Limits:
        """The limits every connection checks."""
        return Limits(
            max_header_size=self.max_header_size,
            max_headers=self.max_headers,
            max_url_size=self.max_url_size,
            max_body_size=self.max_body_size,
            keep_alive_timeout=self.keep_alive_timeout,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            body_min_rate=self.body_min_rate,
            max_connections=self.max_connections,
        )


def _is_service(obj: Any) -> bool:
    return inspect.isclass(obj) and hasattr(obj, "__asgiserve_service__")


def load_app(config: Config) -> tuple[Any, int]:
    """Import the target; return ``(app, default_workers)``. Raises ``ImportError``/``ValueError``."""
    app_dir = str(Path(config.app_dir).resolve())
    if app_dir not in sys.path[:1]:
        sys.path.insert(0, app_dir)
    module_name, _, attr = config.target.partition(":")
    if not module_name:
        raise ValueError(f"invalid target {config.target!r}: use module:Attr or module")
    module = importlib.import_module(module_name)
    if attr:
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    else:
        found = {id(v): v for v in vars(module).values() if _is_service(v)}
        if len(found) != 1:
            names = sorted(v.__name__ for v in found.values())
            raise ValueError(
                f"module {module_name!r} must hold exactly one @service class, found {names or 'none'}: "
                "name one as module:Class"
            )
        obj = next(iter(found.values()))
    return build_app(obj, config)


def build_app(obj: Any, config: Config) -> tuple[Any, int]:
    """The ASGI app for a ``@service`` class or an ASGI app, with its default worker count."""
    from .. import server_context
    from ..app import to_asgi
    from ..service import get_spec

    if _is_service(obj):
        server_context.service_name = get_spec(obj).name
        app = to_asgi(
            obj,
            api_token=config.api_token,
            allow_private_urls=config.allow_private_urls,
            max_body_size=config.max_body_size,
        )
        return app, get_spec(obj).workers
    if inspect.isclass(obj):
        raise ValueError(
            f"{config.target!r} is a class but not a @service: decorate it with @asgiserve.service "
            "(an ASGI app is a function or an instance, not a class)"
        )
    if not callable(obj):
        what = config.target or repr(obj)
        raise ValueError(f"{what!r} is neither a @service class nor an ASGI application")
    return obj, 1
