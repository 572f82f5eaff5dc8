"""Starting the client test service on any runner (tests import this; it is not a test module)."""

from __future__ import annotations

from typing import Any

MODULE = "tests.apps.client_svc"


def start_svc(run_server: Any, runner: str, *extra: str, token: bool = False, **kw: Any) -> Any:
    """Run ``ClientSvc`` under ``runner``, with the API token ``s3cret`` when ``token``."""
    if runner == "uvicorn":
        target = f"{MODULE}:{'app_token' if token else 'app'}"
        return run_server(runner, target, *extra, **kw)
    args = ("--api-token", "s3cret") if token else ()
    return run_server(runner, f"{MODULE}:ClientSvc", *args, *extra, **kw)
