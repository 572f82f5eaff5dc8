"""Mounted apps' lifespans on a real server: startup before ready, shutdown in reverse, failures fail."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.apps.mount_factory import serve
from tests.conftest import RUNNERS

pytestmark = pytest.mark.parametrize("runner", RUNNERS)


def test_startup_before_ready_and_shutdown_in_reverse(run_server, runner, tmp_path):
    events = tmp_path / "events.txt"
    server = serve(
        run_server, runner, "tests.apps.mount_lifespan:Lifespans", env={"MOUNT_EVENTS": str(events)}
    )
    # /readyz answered 200: every mounted app with a lifespan has started by now (FastAPI's takes 0.2 s).
    assert events.read_text().splitlines() == [
        "service init",
        "fastapi startup (service Lifespans)",
        "starlette startup",
        "quart startup",
    ]
    url = server.url
    # The apps without lifespan support serve all the same, and lifespan state reaches requests.
    assert httpx.get(url + "/raw").text == "raw"
    assert httpx.get(url + "/plain").text == "raw"
    assert httpx.get(url + "/star/").text == "star"
    assert httpx.get(url + "/quart/").text == "quart"
    assert httpx.get(url + "/fast/state").json() == "fastapi-pool"
    # A graceful stop: uvicorn re-raises the signal once it is done, asgiserve exits 0.
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert events.read_text().splitlines()[4:] == ["quart shutdown", "starlette shutdown", "fastapi shutdown"]
    out = server.output()
    assert "Traceback" not in out and "ERROR" not in out, out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("BrokenStartup", "database unreachable"),
        ("BrokenRaw", "ValueError: cache directory is read-only"),
    ],
)
def test_mounted_startup_failure_fails_the_server(run_server, runner, tmp_path, target, message):
    events = tmp_path / "events.txt"
    server = serve(
        run_server,
        runner,
        f"tests.apps.mount_lifespan:{target}",
        env={"MOUNT_EVENTS": str(events)},
        ready=False,
    )
    assert server.proc.wait(15) != 0
    out = server.output()
    assert message in out and "failed to start" in out, out
    if target == "BrokenStartup":
        # The app started before the failing one was shut down again.
        assert events.read_text().splitlines() == ["starlette startup", "starlette shutdown"]
