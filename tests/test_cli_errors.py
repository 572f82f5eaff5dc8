"""Startup errors a person can act on: one line saying what and where, exit 1 (load, bind), 3 (startup), 2 (usage)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

import asgiserve
from asgiserve.cli import build_parser
from tests.conftest import ROOT, free_port


def run(*args: str, cwd=ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "asgiserve", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=30)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line of stderr (no traceback)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "needs_torch.py").write_text("import os\nimport not_installed_here  # line 2\n")
    (tmp_path / "bad_syntax.py").write_text("x = 1\ndef broken(:\n")
    (tmp_path / "plain.py").write_text("class NotAService:\n    pass\n\nnumber = 3\n")
    (tmp_path / "raises_init.py").write_text(
        textwrap.dedent(
            """
            import asgiserve

            @asgiserve.service
            class Fails:
                def __init__(self) -> None:
                    raise RuntimeError("weights file missing")  # line 7

                @asgiserve.api
                def hello(self) -> str:
                    return "hi"
            """
        )
    )
    return tmp_path


def test_module_that_does_not_exist(app_dir):
    done = run("no_such_module:Svc", "--app-dir", str(app_dir), "--port", str(free_port()))
    assert done.returncode == 1
    line = one_line(done)
    assert "no module named 'no_such_module'" in line and str(app_dir) in line and "--app-dir" in line


def test_module_whose_import_fails_says_where(app_dir):
    done = run("needs_torch:Svc", "--app-dir", str(app_dir), "--port", str(free_port()))
    assert done.returncode == 1
    line = one_line(done)
    assert "ModuleNotFoundError" in line and "not_installed_here" in line
    assert f"{app_dir / 'needs_torch.py'}:2" in line
    debug = run(
        "needs_torch:Svc", "--app-dir", str(app_dir), "--port", str(free_port()), "--log-level", "debug"
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_syntax_error_says_where(app_dir):
    done = run("bad_syntax", "--app-dir", str(app_dir), "--port", str(free_port()))
    assert done.returncode == 1
    line = one_line(done)
    assert "SyntaxError" in line and f"{app_dir / 'bad_syntax.py'}:2" in line


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("plain:NotAService", "is a class but not a @service"),
        ("plain:number", "neither a @service class nor an ASGI application"),
        ("plain:missing", "has no attribute 'missing'"),
        ("plain", "exactly one @service class, found none"),
    ],
)
def test_target_that_is_not_a_service(app_dir, target, said):
    done = run(target, "--app-dir", str(app_dir), "--port", str(free_port()))
    assert done.returncode == 1
    assert said in one_line(done)


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("tests.apps.traffic:Unlimited", "--port", str(port))
    assert done.returncode == 1
    line = one_line(done)
    assert f"Could not bind 127.0.0.1:{port}" in line and "already in use" in line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_init_that_raises_exits_3(app_dir, workers):
    done = run(
        "raises_init:Fails", "--app-dir", str(app_dir), "--port", str(free_port()), "--workers", workers
    )
    assert done.returncode == 3, done.stderr
    failed = [line for line in done.stderr.splitlines() if "startup failed" in line]
    assert len(failed) >= 1 and "Traceback" not in done.stderr, done.stderr
    assert "RuntimeError: weights file missing" in failed[0]
    assert f"{app_dir / 'raises_init.py'}:7 in __init__" in failed[0]
    debug = run(
        "raises_init:Fails", "--app-dir", str(app_dir), "--port", str(free_port()), "--log-level", "debug"
    )
    assert debug.returncode == 3 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--no-such-flag", "x:y"], {}, "unrecognized arguments: --no-such-flag"),
        (["x:y", "--port", "eighty"], {}, "invalid int value: 'eighty'"),
        (["x:y", "--http", "h3"], {}, "invalid choice: 'h3'"),
        (["x:y"], {"ASGISERVE_PORT": "eighty"}, "ASGISERVE_PORT='eighty' is not a valid int"),
        ([], {}, "a target (module:Class, module:app or module) is required"),
        (["x:y", "--reload", "--workers", "2"], {}, "--reload serves with one worker"),
    ],
)
def test_usage_errors_exit_2(args, env, said):
    done = run(*args, env=env)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"asgiserve {asgiserve.__version__}"


def test_help_lists_every_flag_with_its_variable():
    done = run("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines
    flags = [a for a in build_parser()._actions if a.option_strings and a.dest not in ("help", "version")]
    assert len(flags) >= 22
    for action in flags:
        variable = "ASGISERVE_" + action.dest.upper()
        assert action.option_strings[0] in text and f"[{variable}]" in text, variable
    for flag in ("--reload", "--reload-dir", "--log-format", "--access-log", "--version"):
        assert flag in text
