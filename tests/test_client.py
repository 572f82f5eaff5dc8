"""The clients against a real server: the seed's "Clients" snippets and the acceptance cases."""

from __future__ import annotations

import asyncio
import pathlib
import time

import httpx
import pytest

import asgiserve as bentoml  # the seed's examples run with only this import changed
from asgiserve.client import ServerDisconnected, TransportError
from tests.client_helpers import start_svc
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)

TEXT = "Your long text to summarize. It has two sentences."


@pytest.fixture
def server(run_server, runner):
    return start_svc(run_server, runner)


def test_seed_sync_and_async_summarize(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        response = client.summarize(text=TEXT)
        assert response == "Your long text to summarize."
        if client.is_ready():
            assert client.summarize(text="A. B.") == "A."
        else:
            pytest.fail("service is not ready")

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            assert await client.is_ready()
            return await client.summarize(text=TEXT)

    assert asyncio.run(main()) == "Your long text to summarize."


def test_seed_json(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        data_to_send = {"name": "Alice", "age": 30}
        response = client.predict(data=data_to_send)
        assert response == {"received": data_to_send, "keys": ["age", "name"]}
        assert client.call("predict", data={"x": [1, 2.5, None]})["received"] == {"x": [1, 2.5, None]}


def test_seed_files_path_in_path_out(server, runner, tmp_path):
    src = tmp_path / "cat.png"
    src.write_bytes(b"\x89PNG-data")
    with bentoml.SyncHTTPClient(server.url) as client:
        file_path = pathlib.Path(src)
        response = client.generate(img=file_path, scale=2)
        assert isinstance(response, pathlib.Path)
        assert response.name == "out-cat.png"
        assert response.read_bytes() == b"\x89PNG-data" * 2
        kept = response
    assert not kept.exists()  # downloaded outputs live until the client closes

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            out = await client.generate(img=src)
            return out.name, out.read_bytes()

    assert asyncio.run(main()) == ("out-cat.png", b"\x89PNG-data")


def test_seed_file_url_needs_private_urls_allowed(server, runner):
    # 127.0.0.1 is loopback: refused unless the operator allows private URLs.
    with bentoml.SyncHTTPClient(server.url) as client:
        with pytest.raises(bentoml.InvalidArgument) as info:
            client.generate(img=f"{server.url}/static/1.png")
        assert info.value.status == 400 and "non-public address" in info.value.message


def test_seed_file_url_downloaded(run_server, runner):
    server = start_svc(run_server, runner, env={"ASGISERVE_ALLOW_PRIVATE_URLS": "1"})
    from tests.apps.client_svc import PNG

    with bentoml.SyncHTTPClient(server.url) as client:
        image_url = f"{server.url}/static/1.png"
        response = client.generate(img=image_url)
        assert response.name == "out-1.png" and response.read_bytes() == PNG
        # Redirects are followed; errors from the origin become a 400 naming the URL.
        assert client.generate(img=f"{server.url}/static/redirect").read_bytes() == PNG
        with pytest.raises(bentoml.InvalidArgument, match="HTTP 404"):
            client.generate(img=f"{server.url}/static/missing.png")
        with pytest.raises(bentoml.InvalidArgument, match="http"):
            client.generate(img="/etc/passwd")
        # A download larger than what is kept in memory arrives whole (written off the event loop).
        from tests.apps.client_svc import BIG_BLOCK, BIG_COUNT

        info = client.inspect_upload(doc=f"{server.url}/static/big.bin")
        assert info["name"] == "big.bin" and info["size"] == BIG_BLOCK * BIG_COUNT
        # Spaces and non-ASCII characters in the path are percent-encoded, not refused.
        assert client.generate(img=f"{server.url}/static/with space.png").read_bytes() == PNG
        assert client.generate(img=f"{server.url}/static/caf\u00e9.png").read_bytes() == PNG


def test_seed_streaming(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        chunks = []
        for data_chunk in client.stream_data(n=4):
            chunks.append(data_chunk)
        assert "".join(chunks) == "chunk0;chunk1;chunk2;chunk3;"
        assert all(isinstance(c, str) for c in chunks)
        assert list(client.astream(n=3)) == [{"i": 0}, {"i": 1}, {"i": 2}]

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            text = [c async for c in client.stream_data(n=3)]
            items = [c async for c in client.astream(n=2, delay=0.01)]
            return "".join(text), items

    assert asyncio.run(main()) == ("chunk0;chunk1;chunk2;", [{"i": 0}, {"i": 1}])


def test_seed_token(run_server, runner):
    server = start_svc(run_server, runner, token=True)
    with bentoml.SyncHTTPClient(server.url) as client:
        with pytest.raises(bentoml.HTTPError) as info:
            client.summarize(text=TEXT)
        assert info.value.status == 401 and isinstance(info.value, bentoml.Unauthorized)
    with bentoml.SyncHTTPClient(server.url, token="wrong") as client:
        with pytest.raises(bentoml.Unauthorized):
            client.summarize(text=TEXT)
    with bentoml.SyncHTTPClient(server.url, token="s3cret") as client:
        response = client.summarize(text=TEXT)
        assert response == "Your long text to summarize."

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            with pytest.raises(bentoml.Unauthorized):
                await client.summarize(text=TEXT)
        async with bentoml.AsyncHTTPClient(server.url, token="s3cret") as client:
            return await client.summarize(text=TEXT)

    assert asyncio.run(main()) == "Your long text to summarize."


def test_arguments_checked_before_sending(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        before = repr(client.pool)
        with pytest.raises(TypeError, match="missing required arguments: text"):
            client.summarize()
        with pytest.raises(TypeError, match="unexpected arguments: txt"):
            client.summarize(text="a", txt="b")
        with pytest.raises(TypeError, match="takes 2 arguments"):
            client.add(1, 2, 3)
        with pytest.raises(TypeError, match="multiple values"):
            client.add(1, a=2)
        with pytest.raises(TypeError, match="no api named"):
            client.call("nope")
        assert repr(client.pool) == before  # nothing was sent
        assert client.add(2, b=3) == 5
        assert str(__import__("inspect").signature(client.add)) == "(a, b=0)"


def test_http_errors_are_typed(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        with pytest.raises(bentoml.InvalidArgument) as info:
            client.add(a="x")
        assert info.value.status == 400 and "$.a" in info.value.message and info.value.detail
        with pytest.raises(bentoml.InternalServerError) as err:
            client.fail()
        assert err.value.status == 500 and err.value.message == "Internal Server Error"
        r = client.request("GET", "/static/1.png")
        assert r.status == 200 and r.headers["content-type"] == "image/png"
        r = client.request("GET", "/static/nope")
        assert r.status == 404
        with pytest.raises(bentoml.NotFound):
            r.raise_for_status()
        r = client.request("POST", "/add", json={"a": 4})
        assert r.status == 200 and r.json() == 4
        # HEAD answers have no body, and the connection is not reused after one.
        discarded = client.pool.discarded
        r = client.request("HEAD", "/livez")
        assert r.status == 200 and r.content == b"" and client.pool.discarded == discarded + 1
        assert client.request("GET", "/livez").status == 200


def test_async_client_without_with_block(server, runner):
    async def main():
        client = bentoml.AsyncHTTPClient(server.url)
        try:
            first = await client.summarize(text="One. Two.")  # reads the schema first
            return first, await client.call("add", a=1, b=1), client.endpoints.keys()
        finally:
            await client.close()

    first, added, names = asyncio.run(main())
    assert first == "One." and added == 2 and "stream_data" in names


def test_200_concurrent_async_calls_are_ordered(server, runner):
    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            results = await asyncio.gather(*(client.add(a=i, b=i) for i in range(200)))
            return results, client.pool

    results, pool = asyncio.run(main())
    assert results == [2 * i for i in range(200)]
    assert pool.active == 0 and 1 <= pool.opened <= 100


def test_50_abandoned_streams_leave_the_pool_at_baseline(server, runner):
    with bentoml.SyncHTTPClient(server.url) as client:
        client.add(a=1)
        baseline = client.pool.idle + client.pool.active
        for _ in range(50):
            for item in client.slow_stream(n=1000, delay=0.01):
                assert item == "0 "
                break
        assert client.pool.active == 0 and client.pool.idle <= baseline
        assert client.pool.discarded == 50, repr(client.pool)
        assert client.add(a=2) == 2

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            await client.add(a=1)
            baseline = client.pool.idle + client.pool.active
            for _ in range(50):
                async for item in client.slow_stream(n=1000, delay=0.01):
                    assert item == "0 "
                    break
            deadline = time.monotonic() + 5
            while client.pool.active and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert client.pool.active == 0 and client.pool.idle <= baseline, repr(client.pool)
            # Cancelled requests release their connection too.
            task = asyncio.ensure_future(client.sleep(seconds=0.5))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.pool.active == 0, repr(client.pool)
            return await client.add(a=3)

    assert asyncio.run(main()) == 3


def test_server_killed_mid_response(run_server, runner, tmp_path):
    server = start_svc(run_server, runner)
    port = server.port
    with bentoml.SyncHTTPClient(server.url) as client:
        gen = client.crash_stream()
        assert next(gen) == "first "
        with pytest.raises(ServerDisconnected, match="before the response was complete"):
            next(gen)
        assert client.pool.active == 0 and client.pool.idle == 0, repr(client.pool)
        server.proc.wait(5)
        # The same pool talks to a server restarted on the same port.
        restarted = start_svc(run_server, runner, "--port", str(port), ready=False)
        client.wait_until_ready(20)
        assert restarted.proc.poll() is None
        assert client.summarize(text="Back. Again.") == "Back."
        # A dead server gives a transport error, not a hang.
        restarted.stop()
        with pytest.raises(TransportError):
            client.summarize(text="x.")


def test_sync_client_shared_by_threads(server, runner):
    import threading

    results: dict[int, int] = {}
    with bentoml.SyncHTTPClient(server.url, max_connections=4) as client:

        def work(k: int) -> None:
            for i in range(25):
                results[k * 100 + i] = client.add(a=k * 100 + i, b=1)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == {k * 100 + i: k * 100 + i + 1 for k in range(8) for i in range(25)}
        assert client.pool.opened <= 4 and client.pool.active == 0, repr(client.pool)


def test_timeouts(server, runner):
    with bentoml.SyncHTTPClient(server.url, timeout=0.3) as client:
        with pytest.raises(TimeoutError):
            client.sleep(seconds=2)
        assert client.pool.active == 0
    with pytest.raises(bentoml.ServiceUnavailable):
        bentoml.SyncHTTPClient("http://127.0.0.1:9", server_ready_timeout=0.3)

    async def main():
        with pytest.raises(bentoml.ServiceUnavailable):
            async with bentoml.AsyncHTTPClient("http://127.0.0.1:9", server_ready_timeout=0.3):
                pass
        async with bentoml.AsyncHTTPClient(server.url, timeout=0.3) as client:
            with pytest.raises(TimeoutError):
                await client.sleep(seconds=2)
            assert client.pool.active == 0

    asyncio.run(main())


def test_requests_interoperate_with_httpx(server, runner):
    # The server accepts what our client sends exactly as it accepts httpx's requests.
    r = httpx.post(server.url + "/add", json={"a": 1, "b": 2})
    with bentoml.SyncHTTPClient(server.url) as client:
        assert client.add(a=1, b=2) == r.json() == 3


def test_large_non_streaming_responses(server, runner):
    size = 2 * 1024 * 1024  # past the asyncio pool's high-water mark for streams
    with bentoml.SyncHTTPClient(server.url) as client:
        assert client.big_file(megabytes=2).stat().st_size == size
        assert len(client.predict(data={"x": "y" * size})["received"]["x"]) == size

    async def main():
        async with bentoml.AsyncHTTPClient(server.url, timeout=20) as client:
            path = await asyncio.wait_for(client.big_file(megabytes=2), 20)
            echoed = await asyncio.wait_for(client.predict(data={"x": "y" * size}), 20)
            return path.stat().st_size, len(echoed["received"]["x"]), client.pool

    file_size, echoed, pool = asyncio.run(main())
    assert file_size == size and echoed == size
    assert pool.opened == 1 and pool.discarded == 0, repr(pool)


def test_non_ascii_file_name_round_trip(server, runner):
    name = "r\u00e9sum\u00e9 \u65e5\u672c.txt"
    with bentoml.SyncHTTPClient(server.url) as client:
        path = client.named_file(name=name, text="hi")
        assert path.name == name and path.read_text() == "hi"
        assert path.parent.parent == pathlib.Path(client._tmpdir())

    async def main():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            return (await client.named_file(name=name, text="ho")).name

    assert asyncio.run(main()) == name


def test_allow_private_urls_flag(run_server, runner):
    from tests.apps.client_svc import PNG

    if runner == "uvicorn":  # the flag belongs to asgiserve's own command line
        server = start_svc(run_server, runner, env={"ASGISERVE_ALLOW_PRIVATE_URLS": "1"})
    else:
        server = start_svc(run_server, runner, "--allow-private-urls")
    with bentoml.SyncHTTPClient(server.url) as client:
        assert client.generate(img=f"{server.url}/static/1.png").read_bytes() == PNG
