"""``asgiserve.serve`` and ``asgiserve.Server``: from a script, from a test, in the caller's own loop, with
several workers; a graceful stop, and the caller's signal handlers and logging left alone."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

import asgiserve
from tests.apps.embed_apps import IN_FLIGHT, Broken, EmbedSvc, plain_app
from tests.conftest import ROOT
from tests.test_lifecycle import children, wait_for


def test_serve_from_a_plain_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import time\n"
        "import asgiserve\n"
        "from tests.apps.embed_apps import EmbedSvc\n"
        "t0 = time.perf_counter()\n"
        "server = asgiserve.serve(EmbedSvc, port=0)\n"
        "server.wait_until_ready(10)\n"
        "print('ready', time.perf_counter() - t0)\n"
        "with server.get_client() as client:\n"
        "    print('sum', client.add(a=2, b=3))\n"
        "server.stop()\n"
        "print('running', server.running)\n"
    )
    # The script ends by itself: nothing the server started keeps the interpreter alive.
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["sum"] == "5" and lines["running"] == "False"
    assert float(lines["ready"]) < 5


def test_with_block_readiness_client_calls_and_streams():
    with asgiserve.serve(EmbedSvc, port=0) as server:
        assert server.running and server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/readyz").status_code == 200
        with server.get_client() as client:
            assert client.add(a=1, b=2) == 3
            assert list(client.count(n=4)) == [0, 1, 2, 3]
            who = client.whoami()
        assert who["pid"] == os.getpid() and who["service"] == "EmbedSvc"

        async def use_async():
            async with server.get_async_client() as client:
                items = [i async for i in client.count(n=3)]
                return await client.add(a=5), items

        assert asyncio.run(use_async()) == (5, [0, 1, 2])
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/livez")


def test_token_and_options_reach_the_server_and_its_clients():
    with asgiserve.serve(EmbedSvc, port=0, api_token="s3cret", max_body_size=64, http="h11") as server:
        assert httpx.post(server.url + "/add", json={"a": 1}).status_code == 401
        with server.get_client() as client:  # bound to the server's token
            assert client.add(a=1) == 1
            with pytest.raises(asgiserve.HTTPError) as err:
                client.request("POST", "/add", content="x" * 100).raise_for_status()
            assert err.value.status == 413
    with pytest.raises(TypeError, match="unknown option 'max_bodysize'"):
        asgiserve.serve(EmbedSvc, port=0, max_bodysize=1)
    with pytest.raises(TypeError, match="max_body_size"):
        asgiserve.serve(EmbedSvc, port=0, max_body_size="64")


def test_a_service_that_fails_to_start_raises():
    server = asgiserve.serve(Broken, port=0)
    with pytest.raises(asgiserve.StartupError, match="no model weights here"):
        server.wait_until_ready(10)
    assert not server.running


def test_graceful_stop_answers_the_request_in_flight():
    server = asgiserve.serve(EmbedSvc, port=0, graceful_timeout=10)
    server.wait_until_ready(10)
    IN_FLIGHT.clear()
    answer: dict[str, httpx.Response] = {}

    def call() -> None:
        answer["r"] = httpx.post(server.url + "/slow", json={"seconds": 0.5}, timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    assert IN_FLIGHT.wait(10)
    t0 = time.monotonic()
    server.stop()
    stopped_after = time.monotonic() - t0
    caller.join(10)
    assert answer["r"].status_code == 200 and answer["r"].text == "done"
    assert stopped_after > 0.2  # it waited for the call rather than cutting it
    assert not server.running


def test_two_servers_on_two_ports_in_one_process():
    with asgiserve.serve(EmbedSvc, port=0) as one, asgiserve.serve(plain_app, port=0) as two:
        assert one.url != two.url
        assert httpx.post(one.url + "/add", json={"a": 40, "b": 2}).json() == 42
        assert httpx.get(two.url + "/some/path").text == "/some/path"
        one.stop()
        assert httpx.get(two.url + "/still").text == "/still"  # stopping one leaves the other serving


def _handlers() -> dict[str, object]:
    root, ours = logging.getLogger(), logging.getLogger("asgiserve")
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return {
        "int": signal.getsignal(signal.SIGINT),
        "term": signal.getsignal(signal.SIGTERM),
        "wakeup": fd,
        "root": (list(root.handlers), root.level),
        "ours": (list(ours.handlers), ours.level, ours.propagate),
    }


def test_the_callers_signal_handlers_and_logging_are_left_alone():
    def mine(signum, frame):  # the caller's own handlers
        pass

    saved = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        before = _handlers()
        server = asgiserve.serve(EmbedSvc, port=0)
        assert _handlers() == before
        server.wait_until_ready(10)
        assert httpx.post(server.url + "/add", json={"a": 1}).json() == 1
        assert _handlers() == before
        server.stop()
        assert _handlers() == before
        assert before["int"] is mine and before["term"] is mine
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def test_server_serve_inside_a_loop_with_another_server_and_a_periodic_task():
    async def main() -> dict[str, object]:
        ticks = 0

        async def periodic() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        other = await asyncio.start_server(echo, "127.0.0.1", 0)
        other_port = other.sockets[0].getsockname()[1]
        ticker = asyncio.create_task(periodic())
        server = asgiserve.Server(EmbedSvc, port=0)
        serving = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.started.wait(), 10)
        during = _handlers()
        async with server.get_async_client() as client:
            assert await client.add(a=2, b=2) == 4
            who = await client.whoami()
        reader, writer = await asyncio.open_connection("127.0.0.1", other_port)
        writer.write(b"ping\n")
        echoed = await reader.readline()
        writer.close()
        ticks_while_serving = ticks
        await server.shutdown()
        await asyncio.wait_for(serving, 10)
        ticks_at_stop = ticks
        await asyncio.sleep(0.05)
        # Both keep running after the server is gone.
        reader, writer = await asyncio.open_connection("127.0.0.1", other_port)
        writer.write(b"after\n")
        after = await reader.readline()
        writer.close()
        ticker.cancel()
        other.close()
        await other.wait_closed()
        return {
            "who": who, "during": during, "echoed": echoed, "after": after, "ticks": (ticks_while_serving, ticks_at_stop, ticks),
            "url": server.url, "pending": [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                                           and not t.done() and t is not ticker],
        }

    def mine(signum, frame):
        pass

    saved = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        before = _handlers()
        out = asyncio.run(main())
        after = _handlers()
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    assert out["during"] == before and after == before
    assert out["who"]["pid"] == os.getpid()
    assert out["echoed"] == b"ping\n" and out["after"] == b"after\n"
    while_serving, at_stop, end = out["ticks"]
    assert while_serving > 0 and end > at_stop
    assert out["pending"] == []  # the server left no task behind
    with pytest.raises(httpx.ConnectError):
        httpx.get(out["url"] + "/livez")


def test_should_exit_from_another_thread_ends_serve():
    async def main() -> int | None:
        server = asgiserve.Server(plain_app, port=0)
        serving = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.started.wait(), 10)
        threading.Timer(0.05, lambda: setattr(server, "should_exit", True)).start()
        await asyncio.wait_for(serving, 10)
        return server.exit_code

    assert asyncio.run(main()) == 0


def test_server_serve_raises_when_the_app_fails_to_start():
    with pytest.raises(asgiserve.StartupError, match="no model weights here"):
        asyncio.run(asgiserve.Server(Broken, port=0).serve())


def _workers(out) -> dict[int, dict[str, object]]:
    found = {}
    for path in out.glob("worker-*.json"):
        info = json.loads(path.read_text())
        found[info["pid"]] = info
    return found


def test_two_workers_through_serve_with_stable_indexes(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBED_OUT", str(tmp_path))
    with asgiserve.serve(EmbedSvc, port=0, workers=2) as server:
        assert wait_for(lambda: len(_workers(tmp_path)) == 2)
        first = _workers(tmp_path)
        assert sorted(w["index"] for w in first.values()) == [0, 1]
        for w in first.values():
            assert w["context_index"] == w["index"] and w["env"] == str(w["index"])
            assert w["service"] == "EmbedSvc" and w["pid"] != os.getpid()
        pids = {httpx.post(server.url + "/whoami", json={}).json()["pid"] for _ in range(10)}
        assert pids <= set(first)
        # The supervisor is a child of the test, the workers its children.
        supervisor = server._pid
        assert supervisor is not None and children(supervisor) == set(first)
        # A replacement takes the slot of the worker it replaces.
        victim = next(pid for pid, w in first.items() if w["index"] == 1)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(_workers(tmp_path)) == 3, timeout=15)
        replacement = next(w for pid, w in _workers(tmp_path).items() if pid not in first)
        assert replacement["index"] == 1 and replacement["env"] == "1"
        assert httpx.get(server.url + "/readyz").status_code == 200
    assert not server.running and server.exit_code == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in [supervisor, *_workers(tmp_path)])
    # The caller's own worker identity is untouched.
    assert asgiserve.worker_index() == 0 and os.environ.get("ASGISERVE_WORKER_INDEX") is None


def test_blocking_serve_runs_until_sigterm(tmp_path):
    script = tmp_path / "blocking.py"
    script.write_text(
        "import signal, sys\n"
        "import asgiserve\n"
        "from tests.apps.embed_apps import EmbedSvc\n"
        "def mine(signum, frame): pass\n"
        "signal.signal(signal.SIGINT, mine)\n"
        "asgiserve.serve(EmbedSvc, port=int(sys.argv[1]), blocking=True)\n"
        "print('returned', signal.getsignal(signal.SIGINT) is mine)\n"
    )
    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(ready, timeout=15)
        assert httpx.post(f"http://127.0.0.1:{port}/add", json={"a": 7}).json() == 7
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    # The script's own SIGINT handler is back once serve() returns.
    assert out.strip() == "returned True" and "serving EmbedSvc" in err


def test_workers_leave_when_the_program_that_served_them_dies(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(
        "import os, sys\n"
        "import asgiserve\n"
        "from tests.apps.embed_apps import EmbedSvc\n"
        "server = asgiserve.serve(EmbedSvc, port=0, workers=2)\n"
        "server.wait_until_ready(15)\n"
        "from tests.test_lifecycle import children\n"
        "print(server._pid, *children(server._pid), flush=True)\n"
        "os._exit(0)\n"  # no stop(): as if the program was killed
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=30,
    )
    supervisor, *workers = (int(p) for p in done.stdout.split())
    try:
        assert len(workers) == 2
        assert wait_for(lambda: all(_gone(pid) for pid in [supervisor, *workers]), timeout=15), done.stderr
    finally:
        for pid in [supervisor, *workers]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited, waiting for whoever adopted it to reap it
