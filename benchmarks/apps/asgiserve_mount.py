"""asgiserve peer with the FastAPI peer's app mounted at /v1, against that app directly on uvicorn."""

from __future__ import annotations

from fastapi_app import app as fastapi_app

import asgiserve


@asgiserve.service(name="MountedFastAPI")
@asgiserve.mount_asgi_app(fastapi_app, path="/v1")
class MountedFastAPI:
    """Serves nothing of its own: every request under /v1 goes to FastAPI."""


app = asgiserve.to_asgi(MountedFastAPI)
