"""The foundation over real HTTP: apis, codec, router, infra routes and traffic rules."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)


@pytest.fixture
def summarizer(run_server, runner):
    return run_server(*target(runner, "summarizer", "Summarization"))


def target(runner: str, module: str, cls: str, app: str = "app") -> tuple[str, str]:
    return (runner, f"{module}:{app}") if runner == "uvicorn" else (runner, f"{module}:{cls}")


def test_summarize_contract(summarizer):
    url = summarizer.url
    text = "Cats are great pets. Dogs are loyal. Cats and dogs can be friends. The sky is blue."
    r = httpx.post(url + "/summarize", json={"text": text})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text and all(s.rstrip(".") in text for s in r.text.split(". "))
    # An empty body uses the default argument (the Willow Creek story).
    r = httpx.post(url + "/summarize", content=b"")
    assert r.status_code == 200 and "Whiskers" in r.text
    r = httpx.post(url + "/summarize", json={"text": 5})
    assert r.status_code == 400
    body = r.json()
    assert "`$.text`" in body["error"] and body["detail"][0]["loc"] == ["body", "text"]
    r = httpx.get(url + "/summarize")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "error" in r.json()
    r = httpx.get(url + "/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not found: /nope"}
    r = httpx.post(url + "/summarize", json={"text": "x", "extra": 1})
    assert r.status_code == 400 and "extra" in r.json()["error"]
    r = httpx.post(url + "/summarize", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("Invalid JSON")
    r = httpx.post(url + "/summarize", content=b"<x/>", headers={"content-type": "application/xml"})
    assert r.status_code == 415 and "application/xml" in r.json()["error"]
    # The server keeps serving after all of that.
    assert httpx.post(url + "/summarize", json={"text": "One. Two."}).text == "One. Two."


def test_infra_routes(summarizer):
    url = summarizer.url
    assert httpx.get(url + "/livez").status_code == 200
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/readyz").status_code == 200
    page = httpx.get(url + "/")
    # A static page that builds its forms from schema.json (tests/test_docs_page.py drives it in a browser).
    assert page.status_code == 200 and "schema.json" in page.text and "<script" in page.text
    assert httpx.post(url + "/livez").status_code == 405


@pytest.fixture
def typed(run_server, runner):
    return run_server(*target(runner, "tests.apps.typed", "Typed"))


@pytest.mark.parametrize(
    ("route", "payload", "expected"),
    [
        ("/scalars", {"s": "a", "i": 1, "f": 1.5, "b": True}, {"s": "a", "i": 1, "f": 1.5, "b": True}),
        ("/containers", {"xs": [3, 1], "d": {"a": 1}}, {"xs": [3, 1], "d": {"a": 1.0}, "t": [1, "a"]}),
        ("/containers", {"xs": [], "d": {}, "t": [2, "b"]}, {"xs": [], "d": {}, "t": [2, "b"]}),
        ("/optional", {}, {"maybe": None, "either": 0}),
        ("/optional", {"maybe": 3, "either": "s"}, {"maybe": 3, "either": "s"}),
        ("/literal", {"mode": "slow"}, "slow"),
        ("/constrained", {"n": 4}, 8),
        ("/struct", {"item": {"name": "a", "price": 2}}, {"name": "a", "price": 2.0, "tags": []}),
        ("/dataclass_in", {"p": {"x": 1, "y": 2}}, {"x": 2, "y": 1}),
        ("/typeddict_in", {"m": {"title": "T", "year": 1999}}, {"title": "T", "year": 1999}),
        ("/array", {"a": [[1, 2], [3, 4]]}, [[2, 4], [6, 8]]),
        ("/untyped", {"value": {"k": [1]}}, {"k": [1]}),
        ("/untyped", {"value": "txt"}, "txt"),
        ("/v2/custom", {"x": 5}, {"x": 5}),
        ("/anything", {"value": [1, {"a": None}]}, {"value": [1, {"a": None}]}),
    ],
)
def test_types_round_trip(typed, route, payload, expected):
    r = httpx.post(typed.url + route, json=payload)
    assert r.status_code == 200, r.text
    if isinstance(expected, str):
        assert r.text == expected
    else:
        assert r.json() == expected


@pytest.mark.parametrize(
    ("route", "payload", "field"),
    [
        ("/scalars", {"s": "a", "i": "1", "f": 1.5, "b": True}, "i"),
        ("/scalars", {"s": "a", "f": 1.5, "b": True}, "i"),
        ("/literal", {"mode": "medium"}, "mode"),
        ("/constrained", {"n": 11}, "n"),
        ("/constrained", {"n": 1, "name": "toolong"}, "name"),
        ("/struct", {"item": {"name": "a"}}, "item"),
        ("/sort_items", {"items": [{"name": "a", "price": "x"}]}, "items"),
        ("/dataclass_in", {"p": {"x": 1}}, "p"),
        ("/array", {"a": [[1, 2], [3]]}, "a"),
    ],
)
def test_invalid_input_names_the_field(typed, route, payload, field):
    r = httpx.post(typed.url + route, json=payload)
    assert r.status_code == 400, r.text
    body = r.json()
    assert field in body["error"], body
    assert body["detail"][0]["loc"][:2] == ["body", field]


def test_struct_list_sorts(typed):
    items = [{"name": n, "price": p} for n, p in [("c", 3), ("a", 1), ("b", 1), ("d", 0.5)]]
    r = httpx.post(typed.url + "/sort_items", json={"items": items})
    assert [i["name"] for i in r.json()] == ["d", "a", "b", "c"]
    assert r.headers["content-type"] == "application/json"


def test_outputs_and_errors(typed):
    r = httpx.post(typed.url + "/raw", json={"n": 4})
    assert r.content == b"\x00\x01\x02\x03" and r.headers["content-type"] == "application/octet-stream"
    r = httpx.post(typed.url + "/fails")
    assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}
    assert "secret internal detail" not in r.text
    r = httpx.post(typed.url + "/refuses", json={"n": 3})
    assert r.status_code == 400 and r.json() == {"error": "n must be even, got 3"}


def test_schema_and_openapi(typed):
    schema = httpx.get(typed.url + "/schema.json").json()
    assert schema["name"] == "Typed" and schema["type"] == "service"
    names = {r["name"]: r for r in schema["routes"]}
    assert set(names) >= {"scalars", "containers", "struct", "sort_items", "renamed", "array", "raw"}
    assert names["renamed"]["route"] == "/v2/custom"
    scalars = names["scalars"]["input"]
    assert scalars["type"] == "object" and set(scalars["required"]) == {"s", "i", "f", "b"}
    assert scalars["properties"]["i"] == {"type": "integer"}
    assert names["constrained"]["input"]["properties"]["n"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
    }
    assert names["literal"]["output"] == {"type": "string", "is_stream": False, "media_type": "text/plain"}
    assert "Item" in json.dumps(names["sort_items"]["input"])
    # ``object`` means any JSON value: an open schema, not a service that fails to start.
    assert names["anything"]["input"]["properties"]["value"] == {"description": "Any JSON value", "default": None}
    assert names["anything"]["output"]["additionalProperties"] == {"description": "Any JSON value"}
    docs = httpx.get(typed.url + "/docs.json").json()
    validate(docs)
    assert "/v2/custom" in docs["paths"] and "post" in docs["paths"]["/scalars"]


def test_metrics_count_requests(summarizer):
    url = summarizer.url
    for _ in range(3):
        httpx.post(url + "/summarize", json={"text": "A. B."})
    httpx.post(url + "/summarize", json={"text": 1})
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    counts = {
        (s.labels["endpoint"], s.labels["http_response_code"]): s.value
        for s in families["asgiserve_request"].samples
        if s.name == "asgiserve_request_total"
    }
    assert counts[("/summarize", "200")] == 3 and counts[("/summarize", "400")] == 1
    hist = families["asgiserve_request_duration_seconds"]
    inf = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    assert sum(s.value for s in inf) == 4
    assert "asgiserve_request_in_progress" in families


@pytest.fixture
def traffic(run_server, runner):
    return run_server(*target(runner, "tests.apps.traffic", "Traffic"))


def test_timeout_gives_504_in_time(traffic):
    t0 = time.monotonic()
    r = httpx.post(traffic.url + "/sleep", json={"seconds": 3}, timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and "timeout" in r.json()["error"]
    assert 0.45 < elapsed < 1.5
    r = httpx.post(traffic.url + "/block", json={"seconds": 1.2}, timeout=10)
    assert r.status_code == 504
    assert httpx.post(traffic.url + "/sleep", json={"seconds": 0.01}).json() == {"slept": 0.01}


def test_max_concurrency_gives_429(traffic):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20)) as client:
            calls = [client.post(traffic.url + "/sleep", json={"seconds": 0.3}) for _ in range(10)]
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) == 4
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1" and "max_concurrency" in limited.json()["error"]
    # Probes are never limited, even while the slots are full.
    assert httpx.get(traffic.url + "/livez").status_code == 200


def test_blocking_sync_api_does_not_block_the_loop(traffic):
    done = threading.Event()

    def slow() -> None:
        httpx.post(traffic.url + "/block", json={"seconds": 0.4}, timeout=10)
        done.set()

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert httpx.get(traffic.url + "/livez").status_code == 200
    assert time.monotonic() - t0 < 0.2
    assert not done.is_set()
    t.join()


def test_stream_first_item_arrives_before_last_is_produced(traffic):
    with httpx.stream("POST", traffic.url + "/tokens", json={"n": 3, "delay": 0.3}, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.headers.get("transfer-encoding") == "chunked"
        t0 = time.monotonic()
        arrivals = []
        for chunk in r.iter_text():
            if chunk:
                arrivals.append((time.monotonic() - t0, chunk))
    text = "".join(c for _, c in arrivals)
    assert text == "tok0 tok1 tok2 "
    # The first token came long before the generator finished (it sleeps 0.3 s between tokens).
    assert arrivals[0][0] < 0.2 and arrivals[-1][0] > 0.5


def test_stream_kinds(traffic):
    r = httpx.post(traffic.url + "/numbers", json={"n": 3})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in r.text.splitlines()] == [{"i": 0}, {"i": 1}, {"i": 2}]
    r = httpx.post(traffic.url + "/fail_first")
    assert r.status_code == 500 and r.json() == {"error": "Internal Server Error"}
    r = httpx.post(traffic.url + "/events", json={"n": 2})
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text == 'data: {"i":0}\n\ndata: {"i":1}\n\n'


def test_init_failure_fails_startup(run_server, runner, tmp_path):
    args = target(runner, "tests.apps.traffic", "Broken", app="broken_app")
    server = run_server(*args, ready=False)
    assert server.proc.wait(15) != 0
    out = server.output()
    # One line saying what and where, on every server; the traceback only at --log-level debug.
    assert "RuntimeError: model weights missing (at " in out and "traffic.py:56 in __init__)" in out, out
    assert "Traceback" not in out, out
