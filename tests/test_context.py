"""BentoML's ``Context`` over real HTTP, on our server (both parsers) and uvicorn: the request as the api sees
it, the status, headers and cookies it sets, per-worker state, per-request temporary directories."""

from __future__ import annotations

import concurrent.futures
import pathlib

import httpx
import pytest

import asgiserve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)

MODULE = "tests.apps.sdk_context"


@pytest.fixture
def server(run_server, runner):
    target = f"{MODULE}:app" if runner == "uvicorn" else f"{MODULE}:CtxSvc"
    return run_server(runner, target)


def check_decorated(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["x-echo"] == "yes"
    assert r.headers.get_list("x-multi") == ["a", "b"]
    cookies = r.headers.get_list("set-cookie")
    assert cookies == [
        "session=abc; Max-Age=60; Path=/; HttpOnly; SameSite=lax",
        "theme=dark; Path=/x; Secure; SameSite=strict",
    ]


@pytest.mark.parametrize("api", ["echo", "echo_sync"])
def test_request_and_response(server, runner, api):
    r = httpx.post(
        f"{server.url}/{api}?q=1&q=2&z=%20x",
        json={"text": "hi"},
        headers={"X-Custom": "Value", "Cookie": "a=1; b=two"},
    )
    check_decorated(r, 201 if api == "echo" else 202)
    out = r.json()
    assert out["text"] == "hi"
    assert out["custom"] == "Value" and out["custom_lower"] == "Value"
    assert out["cookies"] == {"a": "1", "b": "two"}
    assert out["query"] == {"q": "2", "z": " x"} and out["q_all"] == ["1", "2"]
    assert out["url"] == f"http://127.0.0.1:{server.port}/{api}?q=1&q=2&z=%20x"
    assert out["path"] == f"/{api}" and out["method"] == "POST" and out["client_host"] == "127.0.0.1"
    # With no header or cookie given: the lookups are empty, not errors.
    r = httpx.post(f"{server.url}/{api}", json={"text": ""})
    assert r.json()["custom"] is None and r.json()["cookies"] == {} and r.json()["query"] == {}


def test_context_is_left_out_of_the_schema_and_the_client(server, runner):
    routes = {r["name"]: r for r in httpx.get(server.url + "/schema.json").json()["routes"]}
    assert list(routes["echo"]["input"]["properties"]) == ["text"]
    assert routes["get_state"]["input"]["properties"] == {}
    assert list(routes["not_a_context"]["input"]["properties"]) == ["ctx"]
    assert "ctx" not in str(httpx.get(server.url + "/docs.json").json()["components"]["schemas"]["EchoInput"])
    with asgiserve.SyncHTTPClient(server.url) as client:
        assert client.echo(text="via client")["text"] == "via client"
        assert client.not_a_context(ctx=41) == 42
    # Giving the context as a body field is an unknown field, as for any other api.
    r = httpx.post(server.url + "/echo", json={"text": "x", "ctx": 1})
    assert r.status_code == 400 and "ctx" in r.json()["error"]


def test_state_is_shared_by_the_apis_of_a_worker(server, runner):
    pid = httpx.post(server.url + "/put_state", json={"key": "k", "value": 7}).json()
    out = httpx.post(server.url + "/get_state").json()
    assert out == {"state": {"k": 7}, "pid": pid}


def test_temp_dir_per_request_removed_after_the_response(server, runner):
    dirs = set()
    for _ in range(3):
        out = httpx.post(server.url + "/temp").json()
        assert out["same"] and out["exists"]
        assert not pathlib.Path(out["dir"]).exists()
        dirs.add(out["dir"])
    assert len(dirs) == 3
    # A file output written into it is sent whole, then removed with it.
    r = httpx.post(server.url + "/file_out")
    assert r.status_code == 200 and r.text == "from the temp dir" and r.headers["x-file"] == "1"


@pytest.mark.parametrize("api,status", [("stream", 203), ("stream_sync", 206)])
def test_streams_carry_status_headers_and_cookies(server, runner, api, status):
    with httpx.stream("POST", f"{server.url}/{api}", json={"n": 5}) as r:
        check_decorated(r, status)
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "".join(r.iter_text()) == "0;1;2;3;4;"


def test_batched_calls_each_get_their_answer_and_headers(server, runner):
    def call(i: int) -> httpx.Response:
        return httpx.post(f"{server.url}/double?tag=t{i}", json={"xs": [i, i + 1]}, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(call, range(32)))
    for i, r in enumerate(responses):
        assert r.status_code == 200 and r.json() == [2 * i, 2 * i + 2]
        # The batch ran with the context of its first call: every call of that batch carries its header.
        assert r.headers["x-batch-query"].startswith("t")


def test_status_content_type_errors_and_bad_headers(server, runner):
    r = httpx.post(server.url + "/teapot")
    assert r.status_code == 418 and r.text == "short and stout"
    assert r.headers["content-type"] == "text/x-tea"
    # An api that raises gets the ordinary error answer: nothing it set on the context.
    r = httpx.post(server.url + "/fails")
    assert r.status_code == 500 and "x-echo" not in r.headers and "set-cookie" not in r.headers
    # A header value with CR/LF cannot forge headers: the api fails when it sets it.
    r = httpx.post(server.url + "/bad_header")
    assert r.status_code == 500 and "x-evil" not in r.headers and "set-cookie" not in r.headers
    # A status the server cannot send (not a final HTTP status) fails the call, on every path.
    for api in ("bad_status", "bad_status_sync"):
        for code in (99, 299, 700):
            r = httpx.post(f"{server.url}/{api}", json={"code": code})
            assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}, (api, code)
        assert httpx.post(f"{server.url}/{api}", json={"code": 226}).status_code == 226
    assert httpx.post(server.url + "/echo", json={"text": "still serving"}).status_code == 201


def test_a_whole_header_mapping_is_sent_and_checked_like_single_headers(server, runner):
    r = httpx.post(server.url + "/mapped_headers", json={})
    assert r.status_code == 200 and r.headers["x-map"] == "one" and r.text == "mapped"
    r = httpx.post(server.url + "/mapped_headers", json={"evil": True})
    assert r.status_code == 500 and "x-evil" not in r.headers and "x-map" not in r.headers


def test_a_context_api_answers_in_the_media_type_asked_for(server, runner):
    import msgspec

    asked = httpx.post(server.url + "/echo", json={"text": "hi"}, headers={"accept": "application/msgpack"})
    plain = httpx.post(server.url + "/echo", json={"text": "hi"})
    assert asked.headers["content-type"] == "application/msgpack" and asked.status_code == 201
    assert asked.headers["x-echo"] == "yes"
    assert msgspec.msgpack.decode(asked.content) == plain.json()


def test_a_failed_context_answer_is_counted_as_a_500(server, runner):
    # The status is set, and found bad only when the answer is made: the call is a 500 all the same.
    for _ in range(3):
        assert httpx.post(server.url + "/bad_status", json={"code": 99}).status_code == 500
    text = httpx.get(server.url + "/metrics").text
    lines = [ln for ln in text.splitlines() if ln.startswith("asgiserve_request_total{") and "bad_status" in ln]
    assert lines and all('http_response_code="500"' in ln for ln in lines), lines
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in lines) == 3
