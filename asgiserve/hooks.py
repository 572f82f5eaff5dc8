"""Lifecycle hooks, as BentoML defines them: ``on_deployment``, ``on_startup``, ``on_shutdown``, and the
``__is_ready__`` / ``__is_alive__`` probes.

The decorators only mark functions. ``Hooks.of(cls)`` collects the marks once, in BentoML's order (the
names as ``dir()`` lists them, alphabetical, skipping dunder names); the app runs them:

- deployment hooks once per process tree, before workers fork (the CLI calls ``run_deployment`` in the
  parent; a worker forked from it inherits the "done" flag, and under another server they run once per
  process at startup);
- startup hooks per worker, after ``__init__``, before mounted apps start and before ``/readyz`` turns 200;
- shutdown hooks after mounted apps shut down.

A sync hook runs on the event loop, as ``__init__`` does (it is part of starting); a sync probe runs in a
thread, so that a slow check never stalls requests.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Hooks", "apply_envs", "on_deployment", "on_shutdown", "on_startup", "run_deployment"]

F = TypeVar("F", bound=Callable[..., object])
_MARK = "__asgiserve_hook__"
_deployed: set[type] = set()  # services whose deployment hooks ran in this process (or its parent)


def on_startup(func: F) -> F:
    """Mark a method to run per worker after ``__init__`` (sync or async)."""
    setattr(func, _MARK, "startup")
    return func


def on_shutdown(func: F) -> F:
    """Mark a method to run per worker when the server shuts down (sync or async)."""
    setattr(func, _MARK, "shutdown")
    return func


def on_deployment(func: Callable[..., object] | staticmethod[..., object]) -> staticmethod[..., object]:
    """Mark a function without ``self`` to run once before any worker starts (a static method)."""
    inner = func.__func__ if isinstance(func, staticmethod) else func
    setattr(inner, _MARK, "deployment")
    return func if isinstance(func, staticmethod) else staticmethod(func)


class Hooks:
    """The hooks and probes a service class declares, in the order they run."""

    __slots__ = ("deployment", "is_alive", "is_ready", "shutdown", "startup")

    def __init__(self, is_ready: bool = False, is_alive: bool = False) -> None:
        self.deployment: list[Callable[[], object]] = []
        self.startup: list[str] = []
        self.shutdown: list[str] = []
        self.is_ready = is_ready
        self.is_alive = is_alive

    @classmethod
    def of(cls, klass: type) -> Hooks:
        """Collect ``klass``'s hooks by name, as BentoML does (``dir()`` order, dunder names skipped)."""
        hooks = cls(is_ready=hasattr(klass, "__is_ready__"), is_alive=hasattr(klass, "__is_alive__"))
        for name in dir(klass):
            if name.startswith("__"):
                continue
            member = getattr(klass, name, None)
            kind = getattr(member, _MARK, None) if callable(member) else None
            if kind == "deployment":
                assert member is not None
                hooks.deployment.append(member)
            elif kind == "startup":
                hooks.startup.append(name)
            elif kind == "shutdown":
                hooks.shutdown.append(name)
        return hooks

    async def run_startup(self, instance: object) -> None:
        """Run the startup hooks on ``instance``; the first that raises stops startup."""
        for name in self.startup:
            result = getattr(instance, name)()
            if inspect.isawaitable(result):
                await result

    async def run_shutdown(self, instance: object) -> None:
        """Run every shutdown hook on ``instance``; one that raises is logged, the rest still run, and the
        first error is raised at the end."""
        first: BaseException | None = None
        for name in self.shutdown:
            try:
                result = getattr(instance, name)()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                import logging  # only when it is needed: declaring hooks must not load logging

                logging.getLogger("asgiserve").exception("shutdown hook %s raised", name)
                first = first or exc
        if first is not None:
            raise first


async def probe(instance: object, name: str) -> bool:
    """Call ``instance.name()`` (``__is_ready__`` or ``__is_alive__``): awaited, or in a thread if sync."""
    import asyncio  # here: declaring hooks must not load asyncio

    method = getattr(instance, name)
    if inspect.iscoroutinefunction(method):
        return bool(await method())
    result = await asyncio.get_running_loop().run_in_executor(None, method)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def apply_envs(envs: list[dict[str, str]]) -> None:
    """Set the service's ``envs`` as BentoML does at serve time: a variable already set wins, then the
    declared ``value``; one with neither is an error; ``stage="build"`` ones are skipped."""
    for env in envs:
        name = env["name"]
        if env.get("stage") == "build" or name in os.environ:
            continue
        value = env.get("value")
        if not value:
            raise RuntimeError(
                f"Environment variable {name!r} is required but not set: set it in the environment or give "
                "it a value in the service's envs"
            )
        os.environ[name] = value


def run_deployment(klass: type, hooks: Hooks, envs: list[dict[str, str]]) -> None:
    """Run ``klass``'s deployment hooks unless they already ran in this process or the one it forked from."""
    if klass in _deployed:
        return
    _deployed.add(klass)
    apply_envs(envs)
    for hook in hooks.deployment:
        hook()
