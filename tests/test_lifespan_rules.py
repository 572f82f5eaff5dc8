"""One lifespan rule set, two ways: the same raw app served by our server, and mounted in a service.

Each app of ``tests.apps.mount_lifespan.RULES`` runs once as the served app (``python -m asgiserve``) and
once mounted at ``/m`` (on our server and on uvicorn, whose own lifespan driver then only sees the
service's). The verdict must be the same: served without lifespan, a failed startup (exit status 3), or a
failed shutdown (logged, the stop still clean).
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.apps.mount_factory import serve
from tests.conftest import ServerProc, start
from tests.rawhttp import wait_listening

WAYS = ["served", "mounted", "mounted-uvicorn"]
SERVE, FAIL = "serve", "fail"
UNSUPPORTED = "does not support the lifespan protocol"

# rule -> (verdict at startup, what the log says about it)
STARTUP = {
    "raises-before-taking": (SERVE, f"{UNSUPPORTED} (RuntimeError: http only)"),
    "returns-before-taking": (SERVE, f"{UNSUPPORTED} (it returned before taking lifespan.startup)"),
    "returns-after-taking": (SERVE, f"{UNSUPPORTED} (it returned without answering lifespan.startup)"),
    "raises-after-taking": (FAIL, "ValueError: cache directory is read-only"),
    "answers-failed": (FAIL, "disk full"),
}


def launch(way: str, rule: str, tmp_path: Path, events: Path) -> tuple[ServerProc, str]:
    """Start the rule's app ``way``; the server and the app's path (not waited for)."""
    env = {"MOUNT_EVENTS": str(events)}
    name = rule.replace("-", "_")
    if way == "served":
        server = start(
            "asgiserve", f"tests.apps.mount_lifespan:served_{name}", tmp_path, env=env, ready=False
        )
        return server, "/"
    runner = "uvicorn" if way == "mounted-uvicorn" else "asgiserve"
    # Our server logs at debug here, so that the note on a mount without lifespan can be read.
    extra = {"uvicorn": (), "asgiserve": ("--log-level", "debug")}[runner]

    def run_server(runner: str, target: str, *args: str, **kw: object) -> ServerProc:
        return start(runner, target, tmp_path, *args, *extra, **kw)  # type: ignore[arg-type]

    server = serve(run_server, runner, f"tests.apps.mount_lifespan:mounting_{name}", env=env, ready=False)
    return server, "/m/"


def stop(server: ServerProc) -> None:
    # uvicorn re-raises the signal once it is done, asgiserve exits 0.
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM), server.output()


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("rule", sorted(STARTUP))
def test_startup_verdict_is_the_same_served_and_mounted(tmp_path, way, rule):
    verdict, said = STARTUP[rule]
    events = tmp_path / "events.txt"
    server, path = launch(way, rule, tmp_path, events)
    try:
        if verdict == FAIL:
            assert server.proc.wait(15) == 3, server.output()
            out = server.output()
            assert said in out, out
            assert ("startup failed" if way == "served" else "failed to start") in out, out
            return
        wait_listening(server.port, server.proc, path=path)
        assert httpx.get(server.url + path).status_code == 200
    finally:
        if server.proc.poll() is None:
            stop(server)
    out = server.output()
    if way != "mounted-uvicorn":  # uvicorn's log level hides our notes
        note = [line for line in out.splitlines() if said in line]
        assert len(note) == 1, out
        # The served app's note is seen at the default level; a mount's is a debug line.
        assert note[0].startswith("INFO:" if way == "served" else "DEBUG:"), note
    assert "ERROR" not in out and "Traceback" not in out, out


@pytest.mark.parametrize("way", WAYS)
def test_a_lifespan_raising_while_served_fails_the_shutdown(tmp_path, way):
    server, path = launch(way, "raises-while-served", tmp_path, tmp_path / "events.txt")
    wait_listening(server.port, server.proc, path=path)
    assert httpx.get(server.url + path).status_code == 200  # served all the same
    out = server.output()
    assert "the lifespan raised while the app was served" in out and "KeyError: 'pool gone'" in out, out
    stop(server)
    out = server.output()
    shutdown = "Application shutdown failed" if way == "served" else "failed to shut down"
    assert f"{shutdown}: KeyError: 'pool gone'" in out, out


@pytest.mark.parametrize("way", WAYS)
def test_a_failed_shutdown_is_logged(tmp_path, way):
    server, path = launch(way, "fails-shutdown", tmp_path, tmp_path / "events.txt")
    wait_listening(server.port, server.proc, path=path)
    stop(server)
    out = server.output()
    shutdown = "Application shutdown failed" if way == "served" else "failed to shut down"
    assert f"{shutdown}: flush failed" in out, out


@pytest.mark.parametrize("way", WAYS)
def test_an_answer_out_of_turn_is_refused(tmp_path, way):
    events = tmp_path / "events.txt"
    server, path = launch(way, "answers-twice", tmp_path, events)
    wait_listening(server.port, server.proc, path=path)
    stop(server)
    assert events.read_text().splitlines() == [
        "second answer refused: 'lifespan.startup.complete' is out of turn in the lifespan protocol",
        "shutdown",
    ]
    assert "ERROR" not in server.output(), server.output()
