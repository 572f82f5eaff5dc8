"""Mounted apps over real HTTP: root_path with real frameworks, prefix boundaries, precedence, documents."""

from __future__ import annotations

import base64
import json
import os
import socket

import httpx
import pytest
from openapi_spec_validator import validate

from tests.apps.mount_factory import module_server, serve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS, scope="module")

__all__ = ["module_server"]


@pytest.fixture(scope="module")
def frameworks(module_server, runner):
    return serve(module_server, runner, "tests.apps.mount_routing:Frameworks")


@pytest.fixture(scope="module")
def boundaries(module_server, runner):
    return serve(module_server, runner, "tests.apps.mount_routing:Boundaries")


def test_fastapi_docs_and_url_for_keep_the_prefix(frameworks):
    url = frameworks.url
    page = httpx.get(url + "/v1/docs")
    assert page.status_code == 200 and "'/v1/openapi.json'" in page.text
    spec = httpx.get(url + "/v1/openapi.json")
    assert spec.status_code == 200
    doc = spec.json()
    assert doc["info"]["title"] == "Inner API" and doc["servers"] == [{"url": "/v1"}]
    assert "/items/{item_id}" in doc["paths"]
    r = httpx.get(url + "/v1/items/7")
    assert r.json() == {"id": 7, "url": f"{url}/v1/items/7"}
    # Validation errors and unknown routes come from FastAPI itself.
    r = httpx.get(url + "/v1/items/seven")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "item_id"]
    r = httpx.get(url + "/v1/nothing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_fastapi_self_routes_including_routers(frameworks):
    url = frameworks.url
    assert httpx.get(url + "/v1/self/3").json() == {"text": "hi 3"}
    assert httpx.get(url + "/v1/self/4", params={"shout": "true"}).json() == {"text": "HI 4"}
    assert httpx.get(url + "/v1/self/x").status_code == 422
    assert httpx.get(url + "/v1/router/who").json() == "Frameworks"
    assert httpx.get(url + "/v1/router/outside").json() == "outside Frameworks"
    assert httpx.get(url + "/v1/sub/deep", params={"depth": 2}).json() == "Frameworks at depth 2"
    params = httpx.get(url + "/v1/openapi.json").json()["paths"]["/self/{n}"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["n", "shout"]


def test_starlette_redirect_and_url_for(frameworks):
    url = frameworks.url
    r = httpx.get(url + "/star/things")
    assert r.status_code == 307 and r.headers["location"] == f"{url}/star/things/"
    r = httpx.get(url + "/star/things/")
    assert r.json() == {"url": f"{url}/star/things/", "root_path": "/star"}


def test_quart_routes_resolve(frameworks):
    r = httpx.get(frameworks.url + "/quart/where")
    assert r.status_code == 200
    assert r.json() == {
        "path": "/where",
        "root_path": "/quart",
        "url_for": "/quart/where",
        "service": "Frameworks",
    }
    assert httpx.get(frameworks.url + "/quart/elsewhere").status_code == 404


def test_mounted_routes_in_documents(frameworks):
    schema = httpx.get(frameworks.url + "/schema.json").json()
    mounted = {path: entry for path, entry in schema["paths"].items() if entry.get("mounted")}
    assert set(mounted) == {"/v1", "/star", "/quart"}
    assert mounted["/quart"]["name"] == "quart"
    assert schema["paths"]["/count"] == {"methods": ["POST"], "api": "count"}
    docs = httpx.get(frameworks.url + "/docs.json").json()
    validate(docs)
    paths = docs["paths"]
    assert {"/count", "/v1/items/{item_id}", "/v1/items", "/v1/self/{n}", "/v1/router/who"} <= set(paths)
    assert [p["name"] for p in paths["/v1/self/{n}"]["get"]["parameters"]] == ["n", "shout"]
    # Both apps define a schema named Item: the mounted one is renamed and its references follow.
    schemas = docs["components"]["schemas"]
    assert set(schemas["Item"]["properties"]) == {"sku"}
    assert set(schemas["v1_Item"]["properties"]) == {"name", "quantity"}
    body = paths["/v1/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/v1_Item"}
    # The api still works beside the mounts.
    assert httpx.post(frameworks.url + "/count", json={"item": {"sku": "abcd"}}).json() == 4


@pytest.mark.parametrize(
    ("path", "app", "root_path"),
    [
        ("/api", "api", "/api"),
        ("/api/", "api", "/api"),
        ("/api/x/y", "api", "/api"),
        ("/apiary", "root", ""),
        ("/api/v2", "api-v2", "/api/v2"),
        ("/api/v2/models", "api-v2", "/api/v2"),
        ("/api/v20", "api", "/api"),
        ("/anything/else", "root", ""),
        ("/", "root", ""),
        ("/livez/extra", "root", ""),
    ],
)
def test_prefix_boundaries_and_longest_match(boundaries, path, app, root_path):
    r = httpx.get(boundaries.url + path)
    assert r.status_code == 200
    assert r.json() == {"app": app, "root_path": root_path, "path": path}


def test_root_mount_never_shadows_service_routes(boundaries):
    url = boundaries.url
    assert httpx.get(url + "/livez").text == "ok\n"
    assert httpx.get(url + "/readyz").text == "ok\n"
    assert httpx.get(url + "/healthz").text == "ok\n"
    assert "asgiserve_request_total" in httpx.get(url + "/metrics").text
    assert httpx.get(url + "/schema.json").json()["paths"]["/"]["mounted"] is True
    validate(httpx.get(url + "/docs.json").json())
    assert httpx.post(url + "/predict", json={"x": 21}).json() == 42
    # GET on an api path is the api's 405, not the mounted app.
    r = httpx.get(url + "/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    # Requests to mounts are counted per mount prefix.
    httpx.get(url + "/api/count-me")
    assert 'endpoint="/api"' in httpx.get(url + "/metrics").text


def websocket_message(port: int, path: str) -> tuple[int, dict | None]:
    """Open a websocket on 127.0.0.1 and return the HTTP status and the first text frame's JSON."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            return status, None
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
            rest += sock.recv(4096)
        assert rest[0] == 0x81 and rest[1] < 126  # one unmasked text frame, short payload
        return status, json.loads(rest[2 : 2 + rest[1]])


def test_websocket_scope_is_rewritten(boundaries, frameworks, runner):
    status, info = websocket_message(boundaries.port, "/api/v2/stream")
    assert status == 101 and info == {"app": "api-v2", "root_path": "/api/v2", "path": "/api/v2/stream"}
    status, info = websocket_message(boundaries.port, "/ws")
    assert status == 101 and info == {"app": "root", "root_path": "", "path": "/ws"}
    # No mount serves this path: the handshake is refused.
    status, _ = websocket_message(frameworks.port, "/nowhere")
    assert status == 403
