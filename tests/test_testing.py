"""``asgiserve.testing``: the in-process clients over the seed examples, errors, streams and files, the
lifespan, the pytest fixture, and answers equal to those of a real server for the same calls."""

from __future__ import annotations

import asyncio
import importlib
import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import asgiserve
from asgiserve.sharedloop import SharedLoop
from asgiserve.testing import AsyncTestClient, TestClient, fixture
from tests.apps import embed_apps
from tests.apps.client_svc import PNG, ClientSvc
from tests.apps.embed_apps import GATES, EmbedSvc, LifespanSvc, Threads, plain_app
from tests.apps.traffic import Traffic
from tests.conftest import ROOT, start

STUBS = ROOT / "tests" / "apps" / "mount_stubs"

# The one-line fixture: a module-scoped, started TestClient named after the variable.
summarizer = fixture("summarizer:Summarization", app_dir=str(ROOT / "examples"))


def seed(module: str, monkeypatch) -> object:
    monkeypatch.syspath_prepend(str(STUBS))
    return importlib.import_module(f"tests.apps.{module}")


def test_the_fixture_gives_a_started_client(summarizer):
    assert isinstance(summarizer, asgiserve.SyncHTTPClient)
    assert summarizer.summarize(text="One. Two. Three.") == "Two. Three."
    assert summarizer.keywords(text="cat cat dog", top=2) == [
        {"word": "cat", "count": 2},
        {"word": "dog", "count": 1},
    ]
    words = list(summarizer.stream_summary(text="Cats purr. Dogs bark."))
    assert "".join(words) == "Cats purr. Dogs bark. "
    assert summarizer.is_ready()


def test_fastapi_seed_inside_and_outside(monkeypatch):
    module = seed("mount_seed_fastapi", monkeypatch)
    with TestClient(module.MyService) as client:
        assert client.request("GET", "/v1/hello").json() == "Hello MyService"
        assert client.request("GET", "/v1/hello1").json() == "Hello MyService"
        assert "self" not in client.request("GET", "/v1/openapi.json").text
        assert client.request("GET", "/hello").status == 404


def test_fastapi_summarization_seed(monkeypatch):
    module = seed("mount_seed_fastapi_summary", monkeypatch)
    with TestClient(module.Summarization) as client:
        inside = client.request("GET", "/v1/hello-inside").json()
        assert inside == "Hello MyService. You can access the Service instance inside the class."
        assert client.summarize(text="Cats purr. Dogs bark.") == "Cats purr."
        assert client.summarize().startswith("Breaking News: In an astonishing turn of events")
        paths = client.request("GET", "/docs.json").json()["paths"]
        assert {"/summarize", "/v1/hello-inside", "/v1/hello-outside"} <= set(paths)


def test_quart_seeds(monkeypatch):
    module = seed("mount_seed_quart", monkeypatch)
    with TestClient(module.MyService) as client:
        r = client.request("GET", "/v1/hello")
        assert r.status == 200 and r.text == "Hello, MyService"
    module = seed("mount_seed_quart_summary", monkeypatch)
    with TestClient(module.Summarization) as client:
        assert client.request("GET", "/v1/hello").text == "Hello, MyService"
        assert client.summarize(text="One. Two.") == "One."


def test_errors_are_the_servers(tmp_path):
    with TestClient(Traffic) as client:
        with pytest.raises(asgiserve.InvalidArgument, match=r"Expected `float`, got `str` - at `\$.seconds`"):
            client.sleep(seconds="long")
        with pytest.raises(TypeError, match="unexpected arguments: nope"):
            client.sleep(nope=1)
        with pytest.raises(asgiserve.Timeout):  # traffic.timeout is 0.5 s
            client.sleep(seconds=2)
        with pytest.raises(asgiserve.HTTPError, match=r"boom|Internal"):
            list(client.fail_first())
        r = client.request("PUT", "/sleep")
        assert r.status == 405 and r.headers["allow"] == "POST"
        assert client.request("GET", "/nowhere").status == 404
    with TestClient(EmbedSvc, api_token="s3cret", token="", max_body_size=32) as client:
        with pytest.raises(asgiserve.Unauthorized):
            client.add(a=1)
        assert client.request("GET", "/readyz").status == 200  # probes stay open
    with TestClient(EmbedSvc, api_token="s3cret", max_body_size=32) as client:  # the token by default
        assert client.add(a=1, b=1) == 2
        r = client.request("POST", "/add", content=b'{"a": 1, "b": 2, "padding": "' + b"x" * 64 + b'"}')
        assert r.status == 413


def test_max_concurrency_applies():
    async def main() -> list[object]:
        async with AsyncTestClient(Traffic) as client:  # max_concurrency is 4
            calls = [client.sleep(seconds=0.2) for _ in range(6)]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert sum(isinstance(r, asgiserve.TooManyRequests) for r in results) == 2
    assert results.count({"slept": 0.2}) == 4


def test_streams_and_files(tmp_path):
    src = tmp_path / "cat.png"
    src.write_bytes(PNG)
    with TestClient(ClientSvc) as client:
        assert "".join(client.stream_data(n=3)) == "chunk0;chunk1;chunk2;"  # text chunks may coalesce
        assert list(client.astream(n=2)) == [{"i": 0}, {"i": 1}]
        out = client.generate(img=src, scale=2)
        assert isinstance(out, pathlib.Path) and out.read_bytes() == PNG * 2
        assert client.blob_size(blob=b"\x00\x01\x02\x03rest", label="b") == {
            "size": 8,
            "label": "b",
            "head": [0, 1, 2, 3],
        }
        docs = [tmp_path / "a.txt", tmp_path / "b.txt"]
        for doc, text in zip(docs, ["A", "B"]):
            doc.write_text(text)
        assert client.join_uploads(docs=docs) == "A|B"
        big = client.big_file(megabytes=3)
        assert big.stat().st_size == 3 * 1024 * 1024
        # A stream left early gives its connection back: the next calls go on.
        stream = client.slow_stream(n=1000, delay=0.001)
        assert next(iter(stream)).startswith("0 ")  # text chunks may coalesce
        stream.close()
        assert client.add(a=2, b=3) == 5
    assert not out.exists()  # file outputs go when the client closes


def test_lifespan_runs_on_enter_and_exit():
    embed_apps.EVENTS.clear()
    client = TestClient(LifespanSvc)
    assert embed_apps.EVENTS == []  # nothing starts before it is used
    with client:
        assert embed_apps.EVENTS == ["init", "mount startup"]
        assert client.events() == ["init", "mount startup"]
        assert client.request("GET", "/life/").json() == ["init", "mount startup"]
    assert embed_apps.EVENTS == ["init", "mount startup", "mount shutdown"]
    # Used again: a new start (a fresh instance), then a new shutdown.
    with client:
        assert client.events()[-2:] == ["init", "mount startup"]
    assert embed_apps.EVENTS[-1] == "mount shutdown" and embed_apps.EVENTS.count("init") == 2


def test_first_use_without_with_starts_and_close_stops():
    embed_apps.EVENTS.clear()
    client = TestClient(LifespanSvc)
    assert client.events() == ["init", "mount startup"]  # an api method before entering
    client.close()
    assert embed_apps.EVENTS[-1] == "mount shutdown"


def test_closing_does_not_wait_for_a_stream_left_open():
    client = TestClient(ClientSvc).__enter__()
    stream = iter(client.slow_stream(n=100_000, delay=0.01))
    assert next(stream) == "0 "
    t0 = time.monotonic()
    client.close()  # as a client process that exits: its connections close, the drain has nothing to wait for
    assert time.monotonic() - t0 < 5  # the graceful timeout is 30 s
    del stream


def test_the_blocking_client_from_threads_and_inside_a_loop():
    with TestClient(Traffic) as client:  # max_concurrency is 4: six calls at once from threads
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: _outcome(client, 0.2), range(6)))
        assert sorted(results) == ["429"] * 2 + ["ok"] * 4

        async def main() -> object:  # a blocking call from inside a running loop (it blocks that loop)
            return client.sleep(seconds=0)

        assert asyncio.run(main()) == {"slept": 0}


def _outcome(client: TestClient, seconds: float) -> str:
    try:
        client.sleep(seconds=seconds)
    except asgiserve.TooManyRequests:
        return "429"
    return "ok"


def test_a_service_that_fails_to_start():
    with pytest.raises(asgiserve.StartupError, match="no model weights here"), TestClient(embed_apps.Broken):
        pass


def test_plain_asgi_app_and_h11():
    for http in ("httptools", "h11"):
        with TestClient(plain_app, http=http) as client:
            r = client.request("GET", "/a/b?c=1")
            assert r.status == 200 and r.text == "/a/b"


def test_async_client_in_the_callers_loop():
    async def main() -> tuple[object, ...]:
        async with AsyncTestClient(EmbedSvc) as client:
            who = await client.whoami()
            items = [i async for i in client.count(n=3)]
            total = sum(await asyncio.gather(*(client.add(a=i) for i in range(20))))
            return who, items, total, asyncio.get_running_loop()

    who, items, total, _ = asyncio.run(main())
    assert items == [0, 1, 2] and total == sum(range(20))
    assert who["index"] == 0 and who["service"] == "EmbedSvc"


def _comparable(r: asgiserve.client.ClientResponse) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in r.headers.items() if k != "date"}
    return r.status, headers, r.content


def test_answers_equal_a_real_servers(tmp_path):
    src = tmp_path / "cat.png"
    src.write_bytes(PNG)
    calls = [
        ("summarize", {"text": "One. Two."}),
        ("predict", {"data": {"x": [1, 2.5, None]}}),
        ("add", {"a": 7, "b": 5}),
        ("form_fields", {"tags": ["a"], "count": 2}),
        ("blob_size", {"blob": b"1234", "label": "x"}),
    ]
    raw = [
        ("GET", "/readyz", None),
        ("GET", "/livez", None),
        ("GET", "/schema.json", None),
        ("GET", "/docs.json", None),
        ("GET", "/", None),
        ("POST", "/add", b'{"a": "x"}'),
        ("POST", "/add", b"not json"),
        ("POST", "/fail", b"{}"),
        ("PUT", "/add", None),
        ("GET", "/missing", None),
        ("GET", "/static/1.png", None),
        ("POST", "/stream_data", b'{"n": 2}'),
        ("POST", "/astream", b'{"n": 2}'),
        ("HEAD", "/livez", None),
    ]

    def run(client: asgiserve.SyncHTTPClient) -> tuple[list[object], list[object], list[object]]:
        values = [client.call(name, **kwargs) for name, kwargs in calls]
        streams = ["".join(client.stream_data(n=3)), list(client.astream(n=3))]
        out = client.generate(img=src, scale=3)
        values.append((out.name, out.read_bytes()))
        answers = [_comparable(client.request(m, p, content=body)) for m, p, body in raw]
        return values, streams, answers

    server = start("asgiserve", "tests.apps.client_svc:ClientSvc", tmp_path, "--no-access-log")
    try:
        with asgiserve.SyncHTTPClient(server.url) as client:
            over_socket = run(client)
    finally:
        server.stop()
    with TestClient(ClientSvc) as client:
        in_process = run(client)
    assert in_process == over_socket


TICKS: list[float] = []


async def _tick() -> None:
    while True:
        TICKS.append(time.monotonic())
        await asyncio.sleep(0.01)


async def ticking_app(scope, receive, send) -> None:
    """A background task started by the lifespan, ticking every 10 ms; GET answers how many ticks."""
    if scope["type"] == "lifespan":
        ticker = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                ticker = asyncio.get_running_loop().create_task(_tick())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if ticker is not None:
                    ticker.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = str(len(TICKS)).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def test_the_app_runs_on_between_calls():
    # Calls run the loop in the caller's thread; between them the loop's own thread runs it, so the
    # background task ticks on while the test sleeps, as it would in a server.
    TICKS.clear()
    with TestClient(ticking_app) as client:
        first = int(client.request("GET", "/").text)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # calls back to back: the loop's own thread stands by meanwhile
            before = int(client.request("GET", "/").text)
        time.sleep(0.3)
        after = int(client.request("GET", "/").text)
    assert before - first >= 10  # timers still fire during the calls (about 30 ticks)
    assert after - before >= 10  # and between them


def test_a_timer_left_while_another_call_runs_fires_after_it():
    # The loop's own thread waits for I/O with no timeout: the loop has no timer yet. A call leaves a
    # timer (0.3 s in) and then blocks the loop for 0.1 s; a callback handed over from another thread
    # meanwhile wakes the loop's thread, which finds the call running and stands by. Once the call ends,
    # the loop's thread must wait for that timer, not go back to its wait with no timeout, which only
    # another call would end.
    shared = SharedLoop()
    fired: list[str] = []

    async def blocking() -> None:
        asyncio.get_running_loop().call_later(0.3, fired.append, "timer")
        time.sleep(0.1)
        await asyncio.sleep(0.01)  # a pass, which reads the wake-up

    try:
        time.sleep(0.02)  # the loop's thread in its wait
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(shared.run, blocking())
            time.sleep(0.03)
            shared.loop.call_soon_threadsafe(fired.append, "handed over")
            call.result()
        time.sleep(0.5)
        assert fired == ["handed over", "timer"]
    finally:
        shared.stop()


def test_a_sync_api_runs_in_the_calling_thread():
    # No handover to a pool thread and back: the calling thread runs the api's function, outside the
    # loop (no running loop there, as in a pool thread), from any thread that calls.
    with TestClient(Threads) as client:
        here = client.where()
        assert here == {"thread": threading.get_ident(), "loop_running": False}
        with ThreadPoolExecutor(2) as pool:
            seen = list(pool.map(lambda _: (threading.get_ident(), client.where()["thread"]), range(8)))
        assert all(caller == ran for caller, ran in seen)
        # The loop runs while the function does: a function waiting for the loop gets its answer.
        assert client.via_loop(text="abc") == "ABC"

        async def inside_a_loop() -> object:  # the caller's own loop is not the function's either
            return client.where()

        assert asyncio.run(inside_a_loop()) == here


def test_sync_apis_that_wait_for_each_other_from_two_threads():
    # One thread's call blocks until another thread's call releases it: each function runs in its own
    # caller's thread (or the pool), never in the thread whose own call would release it.
    GATES.clear()
    with TestClient(Threads) as client:
        for round_ in range(20):
            key = f"k{round_}"
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(client.wait, key=key)
                time.sleep(0.005)
                assert client.release(key=key) == "ok"
                assert waiting.result(timeout=10) == "released"
