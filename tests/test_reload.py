"""``--reload``: an edit on disk is served within 3 s, the old server drains first, broken edits wait for the next."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import httpx

from tests.conftest import start, wait_ready

SERVICE = """
import asyncio
import os

import helper

import asgiserve


@asgiserve.service
class Dev:
    @asgiserve.api
    async def version(self) -> dict:
        return {{"version": "{version}", "helper": helper.WORD, "pid": os.getpid()}}

    @asgiserve.api
    async def slow(self, seconds: float = 1.0) -> str:
        await asyncio.sleep(seconds)
        return "slow {version}"
"""


def write(path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    # A later edit must change the modification time even on coarse clocks: move it forward explicitly.
    stamp = time.time() + write.bump
    write.bump += 1
    os.utime(path, (stamp, stamp))


write.bump = 0


def wait_for(url: str, key: str, value: str, timeout: float) -> tuple[dict, float]:
    """Poll ``POST /version`` until ``key`` is ``value``; the answer and the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            r = httpx.post(url + "/version", timeout=2)
            if r.status_code == 200 and r.json()[key] == value:
                return r.json(), time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{key} did not become {value!r} within {timeout} s")


def test_reload_serves_the_edit_and_drains_the_old_server(tmp_path):
    app = tmp_path / "app"
    lib = tmp_path / "lib"
    app.mkdir()
    lib.mkdir()
    write(app / "devsvc.py", SERVICE.format(version="one"))
    write(lib / "helper.py", "WORD = 'alpha'\n")
    server = start(
        "asgiserve",
        "devsvc:Dev",
        tmp_path,
        "--reload",
        "--app-dir",
        str(app),
        "--reload-dir",
        str(lib),
        env={"PYTHONPATH": f"{os.environ.get('PYTHONPATH', '')}{os.pathsep}{lib}"},
    )
    try:
        first = httpx.post(server.url + "/version").json()
        assert first["version"] == "one" and first["pid"] != server.proc.pid  # served by a child

        # A request in flight when the file changes finishes on the old server.
        slow: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: slow.append(httpx.post(server.url + "/slow", json={"seconds": 1.0}, timeout=10))
        )
        thread.start()
        time.sleep(0.3)
        write(app / "devsvc.py", SERVICE.format(version="two"))
        second, took = wait_for(server.url, "version", "two", timeout=3.0)
        thread.join(10)
        assert [r.status_code for r in slow] == [200] and slow[0].text == "slow one"
        assert second["pid"] != first["pid"] and took < 3.0
        out = server.output()
        assert "Reloading:" in out and "devsvc.py changed" in out
        assert "draining 1 request(s) in flight" in out and "drained 1 request(s)" in out

        # A file in a --reload-dir counts too.
        write(lib / "helper.py", "WORD = 'beta'\n")
        wait_for(server.url, "helper", "beta", timeout=3.0)

        # A broken edit: the server says why and waits; the fix is served.
        write(app / "devsvc.py", "def broken(:\n")
        deadline = time.monotonic() + 5
        while "waiting for a change" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "SyntaxError" in server.output() and "waiting for a change" in server.output()
        assert server.proc.poll() is None
        write(app / "devsvc.py", SERVICE.format(version="three"))
        wait_for(server.url, "version", "three", timeout=3.0)
        last_pid = httpx.post(server.url + "/version").json()["pid"]
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0
    try:
        os.kill(last_pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the server process {last_pid} outlived the reloader")


def test_no_reload_by_default(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write(app / "devsvc.py", SERVICE.format(version="one"))
    (app / "helper.py").write_text("WORD = 'alpha'\n")
    server = start("asgiserve", "devsvc:Dev", tmp_path, "--app-dir", str(app))
    try:
        pid = httpx.post(server.url + "/version").json()["pid"]
        assert pid == server.proc.pid  # no watching parent: the server itself
        write(app / "devsvc.py", SERVICE.format(version="two"))
        time.sleep(1.0)
        wait_ready(server.url, server.proc, server.log)
        assert httpx.post(server.url + "/version").json()["version"] == "one"
    finally:
        assert server.stop() == 0
    assert "Reloading" not in server.output()
