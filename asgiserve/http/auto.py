"""Choose the HTTP protocol and the event loop: httptools and uvloop when importable, else h11 and asyncio."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

from .connection import HTTPProtocol, ServerState

__all__ = ["new_event_loop", "protocol_class"]


def protocol_class(http: str = "auto") -> Callable[[ServerState], HTTPProtocol]:
    """The protocol class for ``--http auto|httptools|h11``."""
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    if http == "httptools":
        from .httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    if http == "h11":
        from .h11_impl import H11Protocol

        return H11Protocol
    raise ValueError(f"unknown HTTP implementation {http!r}: choose auto, httptools or h11")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
