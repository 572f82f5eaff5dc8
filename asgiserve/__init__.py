"""asgiserve: serve a Python class as a fast HTTP inference service, with BentoML's service model.

``import asgiserve as bentoml`` runs code written for BentoML's new SDK. The app and the clients
are imported lazily so that ``import asgiserve`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import server_context
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
from .server_context import get_worker_index as worker_index
from .service import api, asgi_app, get_current_service, mount_asgi_app, service, task

if TYPE_CHECKING:
    from . import images, testing, validators
    from .app import ServiceApp, to_asgi
    from .client import AsyncHTTPClient, SyncHTTPClient, TaskStatus
    from .context import Context, Cookie
    from .embed import Server, StartupError, serve
    from .iodesc import Field, IODescriptor

__version__ = "0.1.0"

__all__ = [
    "AsgiserveError",
    "AsyncHTTPClient",
    "BadRequest",
    "Context",
    "Cookie",
    "Field",
    "HTTPError",
    "IODescriptor",
    "InternalServerError",
    "InvalidArgument",
    "NotFound",
    "ResultStatus",
    "Server",
    "ServiceApp",
    "ServiceUnavailable",
    "StartupError",
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
    "serve",
    "server_context",
    "service",
    "task",
    "testing",
    "to_asgi",
    "validators",
    "worker_index",
]

# asyncio, msgspec and orjson load on first use, so that declaring a service costs no more than its class.
_LAZY = {"SyncHTTPClient": "client", "AsyncHTTPClient": "client", "ServiceApp": "app", "to_asgi": "app"}
_LAZY.update(TaskStatus="client", ResultStatus="client")
_LAZY.update(serve="embed", Server="embed", StartupError="embed", testing="testing", images="images")
# BentoML's SDK names: the request context, and (importing pydantic) Field and IODescriptor.
_LAZY.update(
    Context="context", Cookie="context", Field="iodesc", IODescriptor="iodesc", validators="validators"
)


def __getattr__(name: str) -> object:
    """Import the app, client, embedding and test modules (and ``asgiserve.images``) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asgiserve' has no attribute {name!r}")
    import importlib

    try:
        loaded = importlib.import_module(f".{module}", __name__)
    except ImportError as exc:
        if module == "iodesc" and exc.name == "pydantic":
            raise ImportError(
                f"asgiserve.{name} needs pydantic, which is not installed: pip install pydantic"
            ) from exc
        raise
    return loaded if module == name else getattr(loaded, name)
