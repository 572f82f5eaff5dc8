"""An app factory for uvicorn (``--factory``): serves the service named in ``ASGISERVE_TEST_SERVICE``.

It lets modules that define only a service class (the documented examples) run under uvicorn unchanged.
``ASGISERVE_API_TOKEN`` is passed on as ``api_token``. Also the test helpers that start these services on
every runner of ``tests.conftest.RUNNERS``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

import asgiserve
from tests.conftest import ServerProc, start


def make() -> asgiserve.ServiceApp:
    """The ASGI app of ``module:Class`` from the environment."""
    module, _, name = os.environ["ASGISERVE_TEST_SERVICE"].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return asgiserve.to_asgi(cls, api_token=os.environ.get("ASGISERVE_API_TOKEN") or None)


def serve(run_server: Any, runner: str, target: str, *, token: str | None = None, **kw: Any) -> Any:
    """Start service ``module:Class`` on ``runner`` through the ``run_server`` fixture factory."""
    env = dict(kw.pop("env", None) or {})
    if token is not None:
        env["ASGISERVE_API_TOKEN"] = token
    if runner == "uvicorn":
        env["ASGISERVE_TEST_SERVICE"] = target
        return run_server(runner, "tests.apps.mount_factory:make", "--factory", env=env, **kw)
    extra = ("--api-token", token) if token is not None else ()
    return run_server(runner, target, *extra, env=env, **kw)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Like ``run_server`` but shared by a module's tests (the servers are stopped after the module)."""
    started: list[ServerProc] = []

    def factory(runner: str, target: str, *extra: str, **kw: Any) -> ServerProc:
        server = start(runner, target, tmp_path_factory.mktemp("server"), *extra, **kw)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
