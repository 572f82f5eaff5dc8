"""The command line: targets, flags and their ASGISERVE_* variables, api token, access log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx

from tests.conftest import ROOT, ServerProc, free_port, start, wait_ready
from tests.rawhttp import exchange, wait_listening


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "asgiserve", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout)


def test_environment_variables_configure_the_server(tmp_path):
    port = free_port()
    log = tmp_path / "env.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ASGISERVE_PORT": str(port),
        "ASGISERVE_HTTP": "h11",
        "ASGISERVE_MAX_BODY_SIZE": "100",
        "ASGISERVE_ACCESS_LOG": "false",
        "ASGISERVE_API_TOKEN": "s3cret",
    }
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asgiserve", "tests.apps.traffic:Unlimited"],
            stdout=fh,
            stderr=fh,
            env=env,
            cwd=ROOT,
        )
    server = ServerProc(proc, port, log)
    try:
        wait_ready(server.url, proc, log)
        auth = {"authorization": "Bearer s3cret"}
        r = httpx.post(server.url + "/sleep", json={"seconds": 0}, headers=auth)
        assert r.status_code == 200
        r = httpx.post(server.url + "/sleep", content=b"x" * 200, headers=auth)
        assert r.status_code == 413
        assert httpx.post(server.url + "/sleep", json={"seconds": 0}).status_code == 401
    finally:
        assert server.stop() == 0
    assert "POST /sleep" not in server.output()


def test_api_token(run_server):
    server = run_server("asgiserve", "summarizer:Summarization", "--api-token", "tok")
    url = server.url
    r = httpx.post(url + "/summarize", json={"text": "A. B."})
    assert r.status_code == 401 and "error" in r.json()
    r = httpx.post(url + "/summarize", json={"text": "A. B."}, headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.post(url + "/summarize", json={"text": "A. B."}, headers={"authorization": "Bearer tok"})
    assert r.status_code == 200 and r.text == "A. B."
    for probe in ("/livez", "/readyz", "/healthz", "/metrics"):
        assert httpx.get(url + probe).status_code == 200


def test_module_with_one_service_and_app_dir(run_server, tmp_path):
    (tmp_path / "onesvc.py").write_text(
        textwrap.dedent(
            """
            import asgiserve

            @asgiserve.service
            class Only:
                @asgiserve.api
                async def hello(self, name: str = "you") -> str:
                    return f"hello {name}"
            """
        )
    )
    server = run_server("asgiserve", "onesvc", "--app-dir", str(tmp_path))
    assert httpx.post(server.url + "/hello", json={"name": "cli"}).text == "hello cli"


def test_module_needs_exactly_one_service():
    done = run_cli("tests.apps.traffic", "--port", str(free_port()))
    assert done.returncode == 1
    assert "exactly one @service" in done.stderr and "Traffic" in done.stderr and "Unlimited" in done.stderr


def test_bad_targets_fail_clearly():
    done = run_cli("no_such_module_here:App", "--port", str(free_port()))
    assert done.returncode == 1 and "no_such_module_here" in done.stderr
    done = run_cli("tests.apps.traffic:Nope", "--port", str(free_port()))
    assert done.returncode == 1 and "Nope" in done.stderr
    done = run_cli()
    assert done.returncode == 2 and "target" in done.stderr


def test_plain_asgi_app_ignores_token(run_server, tmp_path):
    server = run_server("asgiserve", "tests.apps.raw_asgi:no_lifespan", "--api-token", "x", ready=False)
    wait_listening(server.port, server.proc, path="/")
    assert httpx.get(server.url + "/").text == "plain"


def test_access_log_escapes_control_characters(tmp_path):
    server = start("asgiserve", "tests.apps.raw_asgi:app", tmp_path, ready=False)
    try:
        wait_listening(server.port, server.proc)
        exchange(
            server.port, b"GET /x%0a%1b[31mINFO:%20forged HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
    finally:
        server.stop()
    lines = server.output().splitlines()
    logged = [line for line in lines if "GET /x" in line]
    assert len(logged) == 1 and "\\n" in logged[0] and "\\x1b" in logged[0] and '" 404' in logged[0]
    assert not any(line.startswith("INFO: forged") for line in lines)


def test_help_lists_every_flag():
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in (
        "--host", "--port", "--workers", "--http", "--log-level", "--access-log", "--api-token", "--app-dir",
        "--max-header-size", "--max-headers", "--max-body-size", "--keep-alive-timeout", "--header-timeout",
        "--max-connections", "--graceful-timeout", "--backlog",
    ):  # fmt: skip
        assert flag in done.stdout
