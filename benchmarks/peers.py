"""The systems compared: how each server is started, which routes it serves, and the peers' virtualenvs.

Every peer serves the same work (``apps/workload.py``). BentoML and LitServe pin many packages, so each gets
its own virtualenv under benchmarks/ (git-ignored), created on first use; when one cannot be installed, its
rows say why and the rest of the run goes on.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .harness import APPS, BENCH, HOST, ROOT

PY = sys.executable

# Benchmark groups (table sections); the route keys below name them.
PREDICT = "POST /predict (async api)"
HELLO = "GET /hello"
SYNC = "POST /predict_sync (sync def api)"
STREAM = "POST /stream (64 tokens, 32 concurrent streams)"
MOUNT_GET = "FastAPI app mounted in asgiserve vs on uvicorn: GET /hello"
MOUNT_POST = "FastAPI app mounted in asgiserve vs on uvicorn: POST /predict"

# ``--routes`` names for the groups above.
ROUTE_NAMES = {
    "predict": PREDICT,
    "hello": HELLO,
    "sync": SYNC,
    "stream": STREAM,
    "mount-get": MOUNT_GET,
    "mount-post": MOUNT_POST,
}
OWN = "asgiserve (own server, httptools)"  # the row a baseline is compared with
# Variants of the own server on POST /predict, each compared with OWN (the features' cost), not a peer.
ACCESS_LOG = "asgiserve (own server, access log on)"
FLOOR = "floor: uvloop + httptools, the least Python an api call takes"
CONTEXT = "asgiserve (own server, an api taking a Context: POST /predict_ctx)"
VARIANTS = (ACCESS_LOG, CONTEXT)

VENV_PACKAGES = {"bentoml": ["bentoml"], "litserve": ["litserve"]}


@dataclass
class Peer:
    """One server under test; ``routes`` maps a group to the path that serves it on this peer."""

    key: str
    label: str
    cmd: Callable[[int], list[str]]
    ready_path: str
    routes: dict[str, str]
    subject: bool = False
    venv: str | None = None
    start_timeout: float = 30.0
    needs_own_server: bool = False
    env: dict[str, str] = field(default_factory=dict)


def own_server_available() -> bool:
    """Whether ``python -m asgiserve`` exists in this checkout (asgiserve's own HTTP server)."""
    return importlib.util.find_spec("asgiserve.__main__") is not None


def venv_python(name: str) -> Path:
    """The interpreter of a peer's virtualenv."""
    return BENCH / f".venv-{name}" / "bin" / "python"


def ensure_venv(name: str) -> str | None:
    """Create and fill a peer's virtualenv when missing; None when ready, else why it is not."""
    root = BENCH / f".venv-{name}"
    marker = root / ".installed"
    if marker.exists():
        return None
    print(
        f"  creating {root.relative_to(BENCH.parent)} (pip install {' '.join(VENV_PACKAGES[name])}) ...",
        flush=True,
    )
    try:
        subprocess.run(
            [sys.base_prefix + "/bin/python3", "-m", "venv", "--clear", str(root)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(
            [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *VENV_PACKAGES[name]],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.startswith("ERROR")]
        return f"could not install {name}: {(lines or [str(exc)])[-1][:200]}"
    marker.touch()
    return None


def uvicorn_cmd(target: str, http: str = "httptools") -> Callable[[int], list[str]]:
    """The command serving ``target`` on uvicorn (httptools or h11, uvloop, no access log) for a port."""
    return lambda port: [
        PY,
        "-m",
        "uvicorn",
        target,
        "--host",
        HOST,
        "--port",
        str(port),
        "--http",
        http,
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _own(target: str, parser: str) -> Callable[[int], list[str]]:
    return lambda port: [
        PY,
        "-m",
        "asgiserve",
        target,
        "--host",
        HOST,
        "--port",
        str(port),
        "--http",
        parser,
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _granian(port: int) -> list[str]:
    granian = str(Path(PY).parent / "granian")
    return [
        granian,
        "--interface",
        "asgi",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "raw_asgi:app",
    ]


def _bentoml(port: int) -> list[str]:
    bentoml = str(venv_python("bentoml").parent / "bentoml")
    return [bentoml, "serve", "bento_svc:Predict", "--host", HOST, "--port", str(port)]


def _litserve(port: int) -> list[str]:
    return [str(venv_python("litserve")), "litserve_app.py", str(port)]


def _ceiling(port: int) -> list[str]:
    return [PY, "ceiling.py", str(port)]


def _floor(port: int) -> list[str]:
    return [PY, "floor.py", str(port)]


_SVC_ROUTES = {PREDICT: "/predict", HELLO: "/hello", SYNC: "/predict_sync", STREAM: "/stream"}

PEERS = [
    Peer(
        "own-httptools",
        OWN,
        _own("asgiserve_svc:Predict", "httptools"),
        "/readyz",
        _SVC_ROUTES,
        subject=True,
        needs_own_server=True,
    ),
    Peer(
        "own-access-log",
        ACCESS_LOG,
        lambda port: [a for a in _own("asgiserve_svc:Predict", "httptools")(port) if a != "--no-access-log"],
        "/readyz",
        {PREDICT: "/predict"},
        needs_own_server=True,
    ),
    Peer(
        "own-context",
        CONTEXT,
        _own("asgiserve_svc:Predict", "httptools"),
        "/readyz",
        {PREDICT: "/predict_ctx"},
        needs_own_server=True,
    ),
    Peer(
        "own-h11",
        "asgiserve (own server, h11)",
        _own("asgiserve_svc:Predict", "h11"),
        "/readyz",
        {PREDICT: "/predict", HELLO: "/hello", SYNC: "/predict_sync"},
        needs_own_server=True,
    ),
    Peer(
        "asgiserve-uvicorn",
        "asgiserve app on uvicorn",
        uvicorn_cmd("asgiserve_svc:app"),
        "/readyz",
        _SVC_ROUTES,
        subject=True,
    ),
    Peer(
        "asgiserve-uvicorn-h11",
        "asgiserve app on uvicorn (h11)",
        uvicorn_cmd("asgiserve_svc:app", "h11"),
        "/readyz",
        {PREDICT: "/predict", HELLO: "/hello"},
    ),
    Peer(
        "raw-uvicorn",
        "raw ASGI + msgspec on uvicorn",
        uvicorn_cmd("raw_asgi:app"),
        "/hello",
        {PREDICT: "/predict", HELLO: "/hello"},
    ),
    Peer(
        "raw-granian",
        "raw ASGI + msgspec on granian",
        _granian,
        "/hello",
        {PREDICT: "/predict", HELLO: "/hello"},
    ),
    Peer(
        "fastapi-uvicorn",
        "FastAPI + pydantic on uvicorn",
        uvicorn_cmd("fastapi_app:app"),
        "/hello",
        {
            PREDICT: "/predict",
            HELLO: "/hello",
            SYNC: "/predict_sync",
            STREAM: "/stream",
            MOUNT_GET: "/hello",
            MOUNT_POST: "/predict",
        },
    ),
    Peer(
        "mount-own",
        "FastAPI mounted in asgiserve (own server)",
        _own("asgiserve_mount:MountedFastAPI", "httptools"),
        "/readyz",
        {MOUNT_GET: "/v1/hello", MOUNT_POST: "/v1/predict"},
        subject=True,
        needs_own_server=True,
    ),
    Peer(
        "mount-uvicorn",
        "FastAPI mounted in asgiserve, on uvicorn",
        uvicorn_cmd("asgiserve_mount:app"),
        "/readyz",
        {MOUNT_GET: "/v1/hello", MOUNT_POST: "/v1/predict"},
        subject=True,
    ),
    Peer(
        "bentoml",
        "BentoML (bentoml serve)",
        _bentoml,
        "/readyz",
        {PREDICT: "/predict", SYNC: "/predict_sync"},
        venv="bentoml",
        start_timeout=90,
        env={"BENTOML_DO_NOT_TRACK": "True"},
    ),
    Peer(
        "litserve",
        "LitServe",
        _litserve,
        "/health",
        {PREDICT: "/predict"},
        venv="litserve",
        start_timeout=90,
        env={"LITSERVE_DISABLE_TELEMETRY": "1"},
    ),
    Peer(
        "ceiling",
        "ceiling: uvloop + httptools, fixed bytes",
        _ceiling,
        "/hello",
        {PREDICT: "/predict", HELLO: "/hello"},
    ),
    Peer(
        "floor",
        FLOOR,
        _floor,
        "/readyz",
        {PREDICT: "/predict"},
    ),
]


def selected(
    only: list[str] | None, routes: list[str] | None = None, baseline: Peer | None = None
) -> tuple[list[Peer], list[str]]:
    """The peers to run (all, or those whose key contains one of ``only``), each cut to ``routes`` (groups)
    when given, and notes on any left out. A ``baseline`` runs right after asgiserve's own server, which is
    then kept whatever ``only`` says: it is what the baseline is compared with."""
    own = own_server_available()
    peers, notes = [], []
    for p in PEERS:
        wanted = p.key == "own-httptools" and baseline is not None
        if only and not any(o in p.key for o in only) and not wanted:
            continue
        if p.needs_own_server and not own:
            notes.append(f"{p.label}: skipped, `python -m asgiserve` is not in this checkout")
            continue
        if p.key == "mount-uvicorn" and own and not (only and "mount-uvicorn" in only):
            continue  # measured only when the own server cannot carry the mount comparison
        peers.append(p)
        if wanted and baseline is not None:
            peers.append(baseline)
    if routes is not None:
        cut = [(p, {g: r for g, r in p.routes.items() if g in routes}) for p in peers]
        peers = [dataclasses.replace(p, routes=kept) for p, kept in cut if kept]
    return peers, notes


@dataclass
class Baseline:
    """Another revision of this repository, extracted by ``git archive``, whose server runs as one more peer."""

    rev: str
    sha: str
    root: Path

    @property
    def short(self) -> str:
        """The abbreviated commit, as labels show it."""
        return self.sha[:7]

    @property
    def label(self) -> str:
        """The baseline's row name."""
        return f"asgiserve @{self.short}"


class BaselineError(RuntimeError):
    """The revision cannot be found, extracted or served."""


def extract_baseline(rev: str, parent: Path = BENCH) -> Baseline:
    """``git archive`` of ``rev`` in ``parent/.baseline-<sha>/`` (kept and reused: a tree never changes)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as exc:
        raise BaselineError(f"git is needed for a baseline: {exc}") from None
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        raise BaselineError(f"{rev!r} is not a commit of {ROOT}")
    root = parent / f".baseline-{sha}"
    if not (root / ".extracted").exists():
        partial = parent / f".baseline-{sha}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            archive = subprocess.Popen(
                ["git", "-C", str(ROOT), "archive", "--format=tar", sha], stdout=subprocess.PIPE
            )
            assert archive.stdout is not None
            with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
                tar.extractall(partial, filter="data")
            if archive.wait(60) != 0:
                raise BaselineError(f"git archive {sha} failed with {archive.returncode}")
            (partial / ".extracted").touch()
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    if not (root / "asgiserve" / "__main__.py").exists():
        raise BaselineError(f"{rev} ({sha[:7]}) has no `python -m asgiserve`: nothing to compare with")
    return Baseline(rev, sha, root.resolve())


# Run in the baseline's server process: the old package must be the one imported (it is first on
# PYTHONPATH, before the editable install of this checkout); the current benchmark app may use the
# builder's current name, ``to_asgi``, which older trees called ``asgi_app``.
_LAUNCH = """\
import runpy, sys
root = sys.argv.pop(1)
import asgiserve
if not asgiserve.__file__.startswith(root + "/"):
    sys.exit(f"asgiserve imported from {asgiserve.__file__}, not from {root}")
if not hasattr(asgiserve, "to_asgi"):
    asgiserve.to_asgi = asgiserve.asgi_app
print(f"baseline: asgiserve from {asgiserve.__file__}", file=sys.stderr, flush=True)
runpy.run_module("asgiserve", run_name="__main__", alter_sys=True)
"""


def baseline_peer(base: Baseline) -> Peer:
    """The baseline's own server (httptools) serving this checkout's benchmark app on the same routes."""
    own = _own("asgiserve_svc:Predict", "httptools")
    return Peer(
        f"baseline-{base.short}",
        base.label,
        lambda port: [PY, "-c", _LAUNCH, str(base.root), *own(port)[3:]],
        "/readyz",
        dict(_SVC_ROUTES),
        env={"PYTHONPATH": f"{base.root}{os.pathsep}{APPS}"},
    )
