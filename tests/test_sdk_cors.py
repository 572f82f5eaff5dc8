"""CORS (``http={"cors": {...}}``) against Starlette's CORSMiddleware with the same settings: the same
cases over real sockets (our server with both parsers and uvicorn, beside a Starlette app behind its
middleware on uvicorn) and, for more settings, the two middlewares side by side in process. Preflights
never reach an api nor take a concurrency slot; a service without CORS has no CORS layer at all."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware

import asgiserve
from asgiserve.app import ServiceApp, WrappedServiceApp
from asgiserve.cors import CORS, cors_options
from tests.apps.mount_factory import serve
from tests.apps.sdk_cors import OPEN, STRICT, starlette_options
from tests.conftest import RUNNERS

PRE = {"access-control-request-method": "POST"}
# (method, path, headers): preflights, then plain requests, on an api, an infra route and a mount.
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("OPTIONS", "/predict", {"origin": "https://app.example", **PRE}),
    ("OPTIONS", "/predict", {"origin": "https://app.example", **PRE, "access-control-request-headers": "X-Custom, content-type"}),
    ("OPTIONS", "/predict", {"origin": "https://app.example", **PRE, "access-control-request-headers": "X-Other"}),
    ("OPTIONS", "/predict", {"origin": "https://app.example", "access-control-request-method": "DELETE"}),
    ("OPTIONS", "/predict", {"origin": "https://evil.example", **PRE}),
    ("OPTIONS", "/predict", {"origin": "https://a.trusted.example", **PRE}),
    ("OPTIONS", "/predict", {"origin": "https://app.example", **PRE, "access-control-request-private-network": "true"}),
    ("OPTIONS", "/m/seen", {"origin": "https://app.example", "access-control-request-method": "GET"}),
    ("OPTIONS", "/readyz", {"origin": "https://evil.example", "access-control-request-method": "GET"}),
    ("OPTIONS", "/predict", {"origin": "https://app.example"}),  # no request method: not a preflight
    ("POST", "/predict", {"origin": "https://app.example"}),
    ("POST", "/predict", {"origin": "https://a.trusted.example", "cookie": "s=1"}),
    ("POST", "/predict", {"origin": "https://evil.example"}),
    ("POST", "/predict", {}),
    ("GET", "/readyz", {"origin": "https://app.example"}),
    ("GET", "/readyz", {"origin": "https://evil.example"}),
    ("GET", "/m/seen", {"origin": "https://a.trusted.example"}),
    ("GET", "/m/seen", {}),
]


def cors_view(status: int, headers: list[tuple[str, str]], body: bytes, preflight: bool) -> dict[str, Any]:
    """What CORS decides in a response: its status, its CORS and Vary headers, and a preflight's body."""
    kept = sorted((k.lower(), v) for k, v in headers if k.lower().startswith("access-control-") or k.lower() == "vary")
    return {"status": status, "headers": kept, "body": body if preflight else None}


def over_socket(url: str) -> list[dict[str, Any]]:
    out = []
    with httpx.Client(base_url=url, timeout=5) as client:
        for method, path, headers in CASES:
            content = b'{"x": 2}' if method == "POST" else None
            hdrs = {**headers, "content-type": "application/json"} if content else headers
            r = client.request(method, path, headers=hdrs, content=content)
            out.append(cors_view(r.status_code, list(r.headers.multi_items()), r.content, "access-control-request-method" in headers))
    return out


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The Starlette apps behind Starlette's CORSMiddleware on uvicorn: their views of every case."""
    from tests.conftest import start

    tmp = tmp_path_factory.mktemp("cors-reference")
    views = {}
    for name, target in (("strict", "tests.apps.sdk_cors:strict_reference"), ("open", "tests.apps.sdk_cors:open_reference")):
        server = start("uvicorn", target, tmp, ready=False)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            views[name] = over_socket(server.url)
        finally:
            server.stop()
    return views


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("name", ["strict", "open"])
def test_cors_answers_as_starlette_over_sockets(run_server, runner, name, references):
    server = serve(run_server, runner, f"tests.apps.sdk_cors:{name.title()}")
    ours = over_socket(server.url)
    for case, mine, theirs in zip(CASES, ours, references[name]):
        assert mine == theirs, case
    # The cases do exercise CORS: a preflight answered, one refused, an origin echoed.
    assert {v["status"] for v in ours[:7]} >= ({200, 400} if name == "strict" else {200})


def test_preflight_never_reaches_an_api_nor_takes_a_slot(run_server):
    server = serve(run_server, "asgiserve", "tests.apps.sdk_cors:Strict")
    url = server.url
    slow = threading.Thread(target=lambda: httpx.post(url + "/slow", json={"seconds": 1.5}, timeout=10))
    slow.start()
    time.sleep(0.4)  # max_concurrency is 1, and the slow call holds the slot
    pre = {"origin": "https://app.example", **PRE}
    for _ in range(3):
        r = httpx.options(url + "/predict", headers=pre, timeout=5)
        assert r.status_code == 200 and r.text == "OK"
        assert r.headers["access-control-allow-origin"] == "https://app.example"
    busy = httpx.post(url + "/predict", json={"x": 1}, headers={"origin": "https://app.example"})
    assert busy.status_code == 429  # the gate does count a real call
    assert busy.headers["access-control-allow-origin"] == "https://app.example"
    slow.join(10)
    assert httpx.post(url + "/calls_so_far").json() == 0  # no preflight called the api


def test_no_cors_layer_without_cors():
    @asgiserve.service
    class Plain:
        @asgiserve.api
        async def predict(self, x: int) -> int:
            return x

    from tests.apps.sdk_cors import Strict

    plain = asgiserve.to_asgi(Plain)
    assert type(plain) is ServiceApp and plain.direct_handler("/predict") is not None
    strict = asgiserve.to_asgi(Strict)
    assert isinstance(strict, WrappedServiceApp) and strict.direct_handler("/predict") is None


# More settings than the servers above, with both middlewares around the same app, in process.
SETTINGS = [
    STRICT,
    OPEN,
    {"enabled": True, "access_control_allow_origins": ["*"], "access_control_allow_credentials": True, "access_control_expose_headers": ["X-A", "X-B"]},
    {"enabled": True, "access_control_allow_origin_regex": r"https://.*\.trusted\.example"},
    {"enabled": True, "access_control_allow_origins": ["https://app.example"], "access_control_allow_headers": ["*"], "access_control_allow_methods": ["PUT"]},
    {"enabled": True, "access_control_allow_origins": "https://app.example", "access_control_max_age": 0},
]
EXTRA_CASES = [
    ("OPTIONS", "/x", {"origin": "https://app.example", "access-control-request-method": "PUT", "access-control-request-headers": "x-anything"}),
    ("OPTIONS", "/x", {"origin": "https://b.trusted.example", "access-control-request-method": "GET"}),
    ("GET", "/x", {"origin": "https://b.trusted.example", "cookie": "a=b"}),
]


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"vary", b"Accept"), (b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"app"})


async def _call(app: Any, method: str, headers: dict[str, str]) -> dict[str, Any]:
    scope = {
        "type": "http", "method": method, "path": "/x", "root_path": "", "query_string": b"", "scheme": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "http_version": "1.1",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    head = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    hdrs = [(k.decode(), v.decode()) for k, v in head["headers"]]
    return cors_view(head["status"], hdrs, body, "access-control-request-method" in headers)


@pytest.mark.parametrize("settings", SETTINGS, ids=range(len(SETTINGS)))
def test_cors_middleware_parity_in_process(settings):
    ours = CORS(_inner, **cors_options(settings))  # type: ignore[arg-type]
    theirs = CORSMiddleware(_inner, **starlette_options(settings))

    async def run() -> None:
        for method, _, headers in CASES + EXTRA_CASES:
            assert await _call(ours, method, headers) == await _call(theirs, method, headers), (method, headers)

    asyncio.run(run())
