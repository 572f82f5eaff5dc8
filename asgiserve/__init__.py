"""asgiserve: serve a Python class as a fast HTTP inference service, with BentoML's service model.

``import asgiserve as bentoml`` runs code written for BentoML's new SDK. The app and the clients
are imported lazily so that ``import asgiserve`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .depends import depends  # after this, ``asgiserve.depends`` is the function, not its module
from .errors import (
    AsgiserveError,
    BadRequest,
    HTTPError,
    InternalServerError,
    InvalidArgument,
    NotFound,
    ServiceUnavailable,
    Timeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
)
from .hooks import on_deployment, on_shutdown, on_startup
from .service import api, asgi_app, get_current_service, mount_asgi_app, service, task

if TYPE_CHECKING:
    from . import images
    from .app import ServiceApp, to_asgi
    from .client import AsyncHTTPClient, SyncHTTPClient, TaskStatus

__version__ = "0.1.0"

__all__ = [
    "AsgiserveError",
    "AsyncHTTPClient",
    "BadRequest",
    "HTTPError",
    "InternalServerError",
    "InvalidArgument",
    "NotFound",
    "ResultStatus",
    "ServiceApp",
    "ServiceUnavailable",
    "SyncHTTPClient",
    "TaskStatus",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "api",
    "asgi_app",
    "depends",
    "get_current_service",
    "images",
    "mount_asgi_app",
    "on_deployment",
    "on_shutdown",
    "on_startup",
    "service",
    "task",
    "to_asgi",
]

# asyncio, msgspec and orjson load on first use, so that declaring a service costs no more than its class.
_LAZY = {"SyncHTTPClient": "client", "AsyncHTTPClient": "client", "ServiceApp": "app", "to_asgi": "app"}
_LAZY.update(TaskStatus="client", ResultStatus="client")


def __getattr__(name: str) -> object:
    """Import the app and client modules (and ``asgiserve.images``) on first use."""
    import importlib

    if name == "images":
        return importlib.import_module(".images", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asgiserve' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
