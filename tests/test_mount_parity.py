"""A FastAPI app mounted at "/" in a service answers exactly as the same app served by uvicorn directly."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.apps.mount_factory import module_server, serve
from tests.conftest import RUNNERS

__all__ = ["module_server"]

# Headers a framework sets (the server's own, like date and server, differ by design).
HEADERS = ("content-type", "content-length", "location", "allow", "x-tea")

REQUESTS = [
    ("GET", "/json", {}, 200),
    ("GET", "/users/42", {"params": {"verbose": "true"}}, 200),
    ("GET", "/users/abc", {}, 422),  # path parameter validation
    ("GET", "/search", {"params": [("q", "cats"), ("tags", "a"), ("tags", "b")]}, 200),
    ("GET", "/search", {}, 422),  # missing query parameter
    ("GET", "/search", {"params": {"q": "x", "limit": "many"}}, 422),
    ("POST", "/orders", {"json": {"item": "tea", "quantity": 2}, "headers": {"x-request-id": "r1"}}, 201),
    ("POST", "/orders", {"json": {"quantity": "two"}}, 422),  # body validation
    ("POST", "/orders", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("DELETE", "/json", {}, 405),  # with Allow
    ("GET", "/missing", {}, 404),
    ("GET", "/teapot", {}, 418),  # HTTPException with headers
    ("GET", "/text", {}, 200),
    ("GET", "/go", {}, 307),  # explicit redirect
    ("GET", "/slash", {}, 307),  # redirect_slashes
    ("HEAD", "/both", {}, 200),  # content-length of the GET body, no body
    ("HEAD", "/json", {}, 405),  # a GET-only FastAPI route
]


def answer(base: str, method: str, path: str, kw: dict) -> tuple[int, dict[str, str], bytes]:
    r = httpx.request(method, base + path, follow_redirects=False, **kw)
    headers = {h: r.headers[h].replace(base, "") for h in HEADERS if h in r.headers}
    return r.status_code, headers, r.content


@pytest.fixture(scope="module")
def direct(module_server):
    server = module_server("uvicorn", "tests.apps.mount_parity:app", ready=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            httpx.get(server.url + "/json", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"FastAPI on uvicorn did not start:\n{server.output()}")


@pytest.fixture(scope="module")
def mounted(module_server, runner):
    return serve(module_server, runner, "tests.apps.mount_parity:Parity")


@pytest.mark.parametrize("runner", RUNNERS, scope="module")
@pytest.mark.parametrize(
    ("method", "path", "kw", "status"), REQUESTS, ids=[f"{m} {p} {s}" for m, p, _, s in REQUESTS]
)
def test_mounted_answers_like_direct(mounted, direct, method, path, kw, status):
    got = answer(mounted.url, method, path, kw)
    assert got[0] == status
    assert got == answer(direct.url, method, path, kw)
