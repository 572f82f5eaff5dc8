"""Instructions per request on asgiserve's own server, counted by callgrind: a figure that does not move with load.

    python benchmarks/instructions.py                        # POST /predict, httptools, uvloop
    python benchmarks/instructions.py --path /livez --http h11 --loop asyncio
    python benchmarks/instructions.py --path /stream         # a 64-token stream (per stream)
    python benchmarks/instructions.py --path /v1/predict     # the FastAPI app mounted at /v1
    python benchmarks/instructions.py --http ceiling         # the ceiling: bare httptools, fixed bytes
    python benchmarks/instructions.py --http floor           # the least Python an api call takes
    python benchmarks/instructions.py --root /path/to/other/checkout   # measure another tree's asgiserve

One process serves the benchmark service (``apps/asgiserve_svc.py``) through the server's own connection
class over an in-memory transport: each keep-alive request is fed as one read, the loop runs until the
response is written, and the response is checked (a 200 with the expected body, byte for byte the same as
the first but for the access log's request id). With ``--access-log``, the log's lines are written every
500 requests (``FLUSH_EVERY``) instead of 50 ms after the first of them: under callgrind the server runs
about 50 times slower, so the 50 ms would come every few dozen requests and put a batch's fixed cost (a
timer, a write) on each dozen, where under the load ``make bench`` puts on it (about 60,000 requests a
second) a batch holds about 3,000 lines. Each line's own formatting is still counted. That process runs
under ``valgrind --tool=callgrind`` twice, with N and 2N requests after the same warm-up;
``(instr(2N) - instr(N)) / N`` is what one more request costs, start-up and imports excluded.
No sockets are involved, so the figure covers parsing, dispatch, the api call and the response bytes, and
the event loop passes around them, but not the kernel's side; ``--http none`` shows what the driver
itself adds (a connection answering with canned bytes).

The count repeats exactly for the same tree, on a loaded machine too, so it resolves changes that
wall-clock benchmarks cannot. What moves it besides the server's code is the allocator's state left by
start-up: paths, environment and this script are kept the same for every tree (see ``count``), and a
change to this script itself moved the figure by about 0.1%, so compare trees with one copy of it
(``--root``), never figures taken with different versions.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import functools
import gc
import itertools
import json
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from asgiserve.app import ServiceApp
    from benchmarks.harness import Row

REPO = Path(__file__).resolve().parent.parent
_COUNTED = "methodcaller_call"  # the C function (in libpython) the counted part runs inside
_COLLECTED = re.compile(rb"Collected\s*:\s*(\d+)")
_REQUEST_ID = b"\r\nx-request-id: "
FLUSH_EVERY = 500  # requests per batch of access log lines (see the module's docstring)


class Connection(Protocol):
    """The part of the server's connection protocol the driver uses (``asyncio.Protocol``'s)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport."""

    def data_received(self, data: bytes) -> None:
        """Bytes from the client."""

    def connection_lost(self, exc: Exception | None) -> None:
        """The client is gone."""


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written and hands each whole response to ``on_response``."""

    def __init__(self, on_response: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        super().__init__()
        self.on_response = on_response
        self.on_close = on_close
        self.out: list[bytes | bytearray | memoryview] = []
        self.size = 0
        self.want = -1  # the length of a response; -1 until the first one's head has been read
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data``; once a whole response is in, hand it over."""
        self.out.append(data)
        self.size += len(data)
        if self.want == -1:
            length = _response_length(b"".join(self.out))
            if length is None:
                return
            self.want = length
        if self.want == CHUNKED:
            # The last chunk, as the end of this write (chunks never contain it here: tokens are text).
            if data[-5:] != b"0\r\n\r\n" or not b"".join(self.out).endswith(b"\r\n0\r\n\r\n"):
                return
        elif self.size < self.want:
            return
        response = b"".join(self.out)
        self.out.clear()
        self.size = 0
        self.on_response(response)

    def close(self) -> None:
        """Mark closed (the client fails on it: a keep-alive connection must stay open)."""
        if not self.closed:
            self.closed = True
            self.on_close()

    def is_closing(self) -> bool:
        """True once closed."""
        return self.closed

    def pause_reading(self) -> None:
        """The server stops reading (pipelining): recorded only."""
        self.reading = False

    def resume_reading(self) -> None:
        """The server reads again."""
        self.reading = True

    def is_reading(self) -> bool:
        """Whether the server wants reads."""
        return self.reading

    def get_write_buffer_size(self) -> int:
        """Nothing is ever buffered: writes are taken at once."""
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        """Loopback addresses, as a real connection has."""
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3000)}.get(name, default)


CHUNKED = -2  # a response framed by chunks: it ends with the last chunk


def _response_length(data: bytes) -> int | None:
    """The length of the Content-Length framed response at the start of ``data`` (``CHUNKED`` for chunked
    framing), None if its head is not in."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    # The usual case in one scan, whose cost hardly depends on the other fields (the access log's id
    # among them: split into lines, the head cost the driver more with the log on).
    at = data.find(b"\r\ncontent-length: ", 0, end)
    if at >= 0:
        at += 18
        return end + 4 + int(data[at : data.index(b"\r\n", at)])
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            return end + 4 + int(value)
        if name == b"transfer-encoding" and value.strip().lower() == b"chunked":
            return CHUNKED
    raise AssertionError(f"response without content-length or chunked framing: {data[:end]!r}")


def _dechunk(body: bytes) -> bytes:
    """The payload of a chunked body."""
    out = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[:size])
        body = body[size + 2 :]


def build_connection(
    app: ServiceApp,
    loop: asyncio.AbstractEventLoop,
    http: str,
    transport: asyncio.Transport,
    access_log: bool = False,
) -> Connection:
    """One connection of the server, built as ``asgiserve.server.server.Server.serve`` builds it.

    The only place that knows the server's internals: adapt it here when they are renamed. The state's
    ``server``/``date`` headers are set once (the server's tick refreshes them every second, which would
    make the response, and so the count, depend on the clock).
    """
    from asgiserve.http.auto import protocol_class
    from asgiserve.http.connection import ServerState

    state = ServerState(app, loop)
    defaults = b"server: asgiserve\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    if hasattr(state, "set_defaults"):
        state.set_defaults(defaults)
    else:  # an older tree (``--root``)
        state.defaults = defaults
        state.head_end = defaults + b"\r\n"
    factory = protocol_class(http)
    if access_log:  # as the server builds it with --access-log, writing its lines to /dev/null
        from asgiserve.http import access
        from asgiserve.http.access import AccessLog, logged_class

        log = AccessLog(open(os.devnull, "w"))  # noqa: SIM115
        access._FLUSH_AFTER = 1e9  # the driver flushes (``Client.on_response``)
        factory = logged_class(factory, log)
    proto: Connection = factory(state)
    proto.connection_made(transport)
    return proto


class Client:
    """A keep-alive client on the other end of a ``MemoryTransport``: the next request once the last is answered.

    Each request is fed to the connection from a plain loop callback, as a socket read is (never inside a
    task); the first response is checked (a 200 with the expected body) and every later one must be the
    same bytes, but for its request id when the access log is on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, expected: bytes) -> None:
        self.loop = loop
        self.request = request
        self.expected = expected
        self.feed: Callable[[bytes], None] = lambda data: None
        self.first = b""
        self.size = -1  # the first response's length, and its bytes before and after its request id
        self.head = self.tail = b""
        self.left = 0
        self.error: str | None = None
        self.log: object = None  # the connection's access log, when on: flushed every FLUSH_EVERY requests

    def run(self, count: int, run_loop: Callable[[], None]) -> None:
        """Send ``count`` requests one after the other; ``run_loop`` runs the loop until they are answered."""
        if count <= 0:
            return
        self.left = count
        self.loop.call_soon(self.feed, self.request)
        run_loop()
        if self.error is not None:
            raise AssertionError(self.error)

    def on_response(self, response: bytes) -> None:
        """A whole response arrived: check it, then send the next request or stop the loop."""
        # Every later response must be the first one's bytes around its request id (with the access log
        # on, each carries its own; without, the split is at a fixed place): the same three checks either
        # way, so that the driver costs the same with the log on and off.
        if (
            len(response) != self.size
            or not response.startswith(self.head)
            or not response.endswith(self.tail)
        ):
            if self.first:
                self.fail(f"response changed: {response!r} after {self.first!r}")
                return
            head, _, body = response.partition(b"\r\n\r\n")
            if b"transfer-encoding: chunked" in head.lower():
                body = _dechunk(body)
            if not head.startswith(b"HTTP/1.1 200 ") or body != self.expected:
                self.fail(f"unexpected response: {response!r}")
                return
            self.first = response
            self.size = len(response)
            cut = response.find(_REQUEST_ID)
            if cut >= 0:
                cut += len(_REQUEST_ID)
                self.head, self.tail = response[:cut], response[response.index(b"\r", cut) :]
            else:
                self.head, self.tail = response[:12], response[12:]
        self.left -= 1
        # The modulo first, so that the log off pays for the same test (its flush is the server's cost).
        if not self.left % FLUSH_EVERY and self.log is not None:
            self.log.flush()  # type: ignore[attr-defined]
        if self.left:
            self.loop.call_soon(self.feed, self.request)
        else:
            self.loop.stop()

    def on_close(self) -> None:
        """The server closed the connection, which a keep-alive client never sees here."""
        self.fail("the server closed the connection")

    def fail(self, error: str) -> None:
        """Stop the loop; ``run`` raises ``error``."""
        if self.error is None:
            self.error = error
        self.loop.stop()


class CannedConnection:
    """Not the server: answers every read with the same bytes, to show what the driver itself costs."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Answer at once."""
        assert self.transport is not None
        self.transport.write(self.response)

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to clean up."""


def start_app(app: ServiceApp, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Run the app's lifespan startup (the service instance is made there), as the server does first.

    Returns what runs its shutdown.
    """
    from asgiserve.server.lifespan import Lifespan

    lifespan = Lifespan(app, {})
    if not loop.run_until_complete(lifespan.startup()):
        raise SystemExit("lifespan startup failed")
    # The app's deadline sweep is a wall-clock timer: under callgrind, which runs ~50x slower, it would
    # fire a number of times that depends on the machine's speed. No request here comes near a deadline.
    # Found wherever the app keeps it; an ImportError here means the sweep moved.
    from asgiserve.traffic import Deadlines

    sweeps = [o for o in gc.get_objects() if isinstance(o, Deadlines)]
    if not sweeps:
        raise SystemExit("no deadline sweep found: adapt start_app")
    for sweep in sweeps:
        sweep.stop()
    return lambda: loop.run_until_complete(lifespan.shutdown(5.0))


def load_app(target: str) -> Callable[..., object]:
    """The ASGI app ``module:attribute`` names (a module of ``benchmarks/apps``)."""
    import importlib

    module, _, attribute = target.partition(":")
    app: Callable[..., object] = getattr(importlib.import_module(module), attribute or "app")
    return app


def uvicorn_connection(
    app: Callable[..., object], loop: asyncio.AbstractEventLoop
) -> tuple[Connection, Callable[[], None]]:
    """A connection of uvicorn's httptools protocol serving ``app`` as ``make bench`` runs it (the
    command's defaults: proxy headers trusted from 127.0.0.1, no access log), after the app's lifespan
    startup through uvicorn's own driver; and what runs its shutdown.

    The ``date`` header is fixed, as for our server (``build_connection``). The only place that knows
    uvicorn's internals: adapt it here when they change.
    """
    from uvicorn.config import Config
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState as UvicornState

    config = Config(app, http="httptools", loop="none", access_log=False, log_config=None, lifespan="on")
    config.load()
    lifespan = LifespanOn(config)
    loop.run_until_complete(lifespan.startup())
    if lifespan.startup_failed:
        raise SystemExit("lifespan startup failed on uvicorn")
    from asgiserve.traffic import Deadlines

    for sweep in [o for o in gc.get_objects() if isinstance(o, Deadlines)]:  # an asgiserve app's (start_app)
        sweep.stop()
    state = UvicornState()
    state.default_headers = [(b"server", b"uvicorn"), (b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]
    proto = HttpToolsProtocol(config, state, {}, _loop=loop)
    return proto, lambda: loop.run_until_complete(lifespan.shutdown())


def steady_clock() -> None:
    """Make ``time.monotonic`` a counter that moves 1 µs per call, before asgiserve imports it.

    Request durations (metrics histogram, deadlines) come from it; measured on the real clock under
    callgrind's slowdown, a varying share of them would land past the first histogram bucket and take a
    bisection, which made the count drift with the machine's load. The counter is C code, as the clock is.
    """
    time.monotonic = itertools.count(1_000_000.0, 1e-6).__next__


# The paths measured: (method, service, request body, expected response body).
PATHS = {
    "/predict": ("POST", "asgiserve_svc:Predict", "PREDICT_BODY", "PREDICT_RESPONSE"),
    "/livez": ("GET", "asgiserve_svc:Predict", None, "ok\n"),
    "/hello": ("GET", "asgiserve_svc:Predict", None, "HELLO_RESPONSE"),
    "/stream": ("POST", "asgiserve_svc:Predict", "STREAM_BODY", "STREAMED"),
    "/v1/hello": ("GET", "asgiserve_mount:MountedFastAPI", None, "HELLO_RESPONSE"),
    "/v1/predict": ("POST", "asgiserve_mount:MountedFastAPI", "PREDICT_BODY", "PREDICT_RESPONSE"),
}


def request_for(path: str) -> tuple[bytes, bytes, str]:
    """The request bytes for ``path``, the response body expected, and the service serving it."""
    import workload

    # Another predict api of the benchmark service (/predict_ctx, ...) takes and answers what /predict does.
    method, target, body_name, expected_name = PATHS.get(path) or PATHS["/predict"]
    if expected_name == "STREAMED":
        expected = (workload.TOKEN * workload.TOKENS).encode()
    elif expected_name.isupper():
        expected = getattr(workload, expected_name)
    else:
        expected = expected_name.encode()
    if body_name is None:
        return f"{method} {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode(), expected, target
    body: bytes = getattr(workload, body_name)
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body, expected, target


def serve(
    path: str,
    http: str,
    loop_name: str,
    warmup: int,
    requests: int,
    access_log: bool = False,
    asgi: str | None = None,
) -> dict[str, object]:
    """Serve ``warmup + requests`` keep-alive requests on one connection; check every response.

    ``asgi`` (``module:attribute`` of ``benchmarks/apps``) is the ASGI app uvicorn serves with ``--http
    uvicorn``; by default the asgiserve app of the path's service, as ``make bench`` runs it on uvicorn.
    """
    steady_clock()
    import importlib

    import asgiserve

    request, expected, target = request_for(path)
    module, _, cls = target.partition(":")
    service = getattr(importlib.import_module(module), cls)
    loop: asyncio.AbstractEventLoop
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Older trees (``--root``) named the builder ``asgi_app``.
    build = getattr(asgiserve, "to_asgi", None) or asgiserve.asgi_app
    app = build(service)
    proto: Connection
    if http == "uvicorn":
        proto, shutdown = uvicorn_connection(load_app(asgi) if asgi else app, loop)
    else:
        shutdown = start_app(app, loop)
    client = Client(loop, request, expected)
    transport = MemoryTransport(client.on_response, client.on_close)
    if http == "none":
        proto = CannedConnection(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(expected), expected)
        )
        proto.connection_made(transport)
    elif http == "ceiling":
        from ceiling import FixedProtocol

        proto = FixedProtocol()
        proto.connection_made(transport)
    elif http == "floor":
        from floor import FloorProtocol

        proto = FloorProtocol()
        proto.connection_made(transport)
    elif http == "uvicorn":
        proto.connection_made(transport)
    else:
        proto = build_connection(app, loop, http, transport, access_log)
        client.log = getattr(proto, "log", None)
    client.feed = proto.data_received
    client.run(warmup, loop.run_forever)
    t0 = time.perf_counter()
    # Through a methodcaller, whose C call function nothing else here uses: callgrind counts only inside
    # it (see ``count``), which leaves out start-up, imports and the warm-up.
    client.run(requests, functools.partial(operator.methodcaller("run_forever"), loop))
    elapsed = time.perf_counter() - t0
    transport.on_close = lambda: None  # uvicorn closes the transport of a connection it is told is lost
    proto.connection_lost(None)
    shutdown()
    loop.close()
    return {
        "asgiserve": asgiserve.__file__,
        "requests": requests,
        "seconds": elapsed,
        "response_bytes": len(client.first),
    }


def count(
    root: Path,
    path: str,
    http: str,
    loop_name: str,
    warmup: int,
    requests: int,
    keep: Path | None = None,
    access_log: bool = False,
    asgi: str | None = None,
) -> tuple[int, dict[str, object]]:
    """Instructions callgrind counts inside the timed part of one inner run, and the run's own report."""
    # The tree is reached through a link and this script runs from a copy, at the same paths for any
    # checkout, in a fixed, minimal environment: the strings made at start-up (module paths, os.environ)
    # shape the allocator's pools and the dicts holding them, which moves the count by tens per request.
    # Hence one fixed directory, and a lock so that two runs at once take turns.
    tmp = Path(tempfile.gettempdir()) / "asgiserve-instructions"
    tmp.mkdir(exist_ok=True)
    with open(tmp / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree = tmp / "tree"
        tree.unlink(missing_ok=True)
        tree.symlink_to(root, target_is_directory=True)
        script = tmp / "instructions.py"
        shutil.copyfile(__file__, script)
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--toggle-collect={_COUNTED}",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            str(script),
            "--inner",
            "--path",
            path,
            "--http",
            http,
            "--loop",
            loop_name,
            "--warmup",
            str(warmup),
            "--requests",
            str(requests),
            *(["--access-log"] if access_log else []),
            *(["--app", asgi] if asgi else []),
        ]
        # A fixed hash seed: set and dict layouts (and so the instructions spent probing them) repeat.
        env = {"PYTHONHASHSEED": "0", "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'benchmarks' / 'apps'}"}
        try:
            # A response the client never sees whole would leave the loop waiting: bounded here.
            run = subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=900)
        except subprocess.TimeoutExpired:
            raise SystemExit(
                f"the run under callgrind did not end within 900 s ({requests} requests)"
            ) from None
        found = _COLLECTED.findall(run.stderr)
        if run.returncode != 0 or not found:
            sys.stderr.write(run.stderr.decode(errors="replace")[-4000:])
            raise SystemExit(f"the run under callgrind failed (exit status {run.returncode})")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(
                tmp / "callgrind.out", keep / f"callgrind-{http}{path.replace('/', '-')}-{requests}.out"
            )
        report: dict[str, object] = json.loads(run.stdout.splitlines()[-1])
        report["asgiserve"] = os.path.realpath(str(report["asgiserve"]))
        counted = int(found[-1])
        if counted < 1000 * requests:
            raise SystemExit(
                f"callgrind counted {counted} instructions: is {_COUNTED} not in libpython's symbols?"
            )
        return counted, report


def per_request(
    root: Path,
    path: str,
    http: str,
    n: int,
    warmup: int = 200,
    access_log: bool = False,
    asgi: str | None = None,
) -> float:
    """Instructions one more request costs: ``(instr(2N) - instr(N)) / N``, counted as ``main`` does."""
    small, _ = count(root, path, http, "uvloop", warmup, n, access_log=access_log, asgi=asgi)
    large, _ = count(root, path, http, "uvloop", warmup, 2 * n, access_log=access_log, asgi=asgi)
    return (large - small) / n


def annotate(rows: list[Row], quick: bool) -> list[str]:
    """Add the ``instructions/req`` column to the rows of ``make bench`` that this driver can reproduce
    (asgiserve's own server, the ceiling, the floor, and the uvicorn peers on uvicorn's own protocol);
    returns notes on what was left out."""
    from benchmarks import peers as P
    from benchmarks.report import CEILING, INSTR

    if shutil.which("valgrind") is None:
        return ["instructions/req not counted: valgrind is not installed"]
    own, h11, mount = (
        "asgiserve (own server, httptools)",
        "asgiserve (own server, h11)",
        ("FastAPI mounted in asgiserve (own server)"),
    )
    on_uvicorn, raw, fastapi = (
        "asgiserve app on uvicorn",
        "raw ASGI + msgspec on uvicorn",
        "FastAPI + pydantic on uvicorn",
    )
    # (path, server, N, the ASGI app uvicorn serves: None for the asgiserve app)
    plan: dict[tuple[str, str], tuple[str, str, int, str | None]] = {
        (P.PREDICT, own): ("/predict", "httptools", 1000, None),
        (P.PREDICT, P.ACCESS_LOG): ("/predict", "httptools", 1000, None),
        (P.PREDICT, P.CONTEXT): ("/predict_ctx", "httptools", 1000, None),
        (P.PREDICT, h11): ("/predict", "h11", 1000, None),
        (P.PREDICT, CEILING): ("/predict", "ceiling", 1000, None),
        (P.PREDICT, P.FLOOR): ("/predict", "floor", 1000, None),
        (P.PREDICT, on_uvicorn): ("/predict", "uvicorn", 1000, None),
        (P.PREDICT, raw): ("/predict", "uvicorn", 1000, "raw_asgi:app"),
        (P.HELLO, own): ("/hello", "httptools", 1000, None),
        (P.HELLO, h11): ("/hello", "h11", 1000, None),
        (P.HELLO, CEILING): ("/hello", "ceiling", 1000, None),
        (P.HELLO, on_uvicorn): ("/hello", "uvicorn", 1000, None),
        (P.HELLO, raw): ("/hello", "uvicorn", 1000, "raw_asgi:app"),
        (P.STREAM, own): ("/stream", "httptools", 100, None),
        (P.STREAM, on_uvicorn): ("/stream", "uvicorn", 100, None),
        (P.MOUNT_GET, mount): ("/v1/hello", "httptools", 300, None),
        (P.MOUNT_GET, fastapi): ("/hello", "uvicorn", 300, "fastapi_app:app"),
        (P.MOUNT_POST, mount): ("/v1/predict", "httptools", 300, None),
        (P.MOUNT_POST, fastapi): ("/predict", "uvicorn", 300, "fastapi_app:app"),
    }
    notes = []
    counted: dict[tuple[str, str, int, str | None, bool], float] = {}  # FastAPI's rows repeat in groups
    for row in rows:
        job = plan.get((row.group, row.name))
        if job is None or row.value is None:
            continue
        path, http, n, asgi = job
        if quick:
            n = max(n // 4, 20)
        logged = row.name == P.ACCESS_LOG
        key = (path, http, n, asgi, logged)
        try:
            if key not in counted:
                counted[key] = per_request(
                    REPO, path, http, n, warmup=min(200, n), access_log=logged, asgi=asgi
                )
            row.extra[INSTR] = counted[key]
        except (SystemExit, OSError, subprocess.SubprocessError) as exc:
            notes.append(f"instructions/req for {row.name} ({path}): {exc}")
    notes.append(
        "instructions/req: user-space instructions one more request costs under callgrind "
        "(benchmarks/instructions.py, in-memory transport, kernel excluded); for the stream, per stream; "
        "uvicorn's rows run uvicorn's own httptools protocol (--http uvicorn) on the same driver"
    )
    return notes


def main() -> int:
    """Count instructions for N and 2N requests under callgrind; print what one request costs."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--path",
        default="/predict",
        help=f"the request: one of {', '.join(sorted(PATHS))}, or another predict api of "
        "apps/asgiserve_svc.py (/predict_ctx, ...)",
    )
    ap.add_argument(
        "--http",
        choices=["httptools", "h11", "none", "ceiling", "floor", "uvicorn"],
        default="httptools",
        help="the parser; none: a canned answer instead of the server, to show what the driver costs; "
        "ceiling: the bare httptools protocol of benchmarks/apps/ceiling.py; floor: the least Python an "
        "api call takes (benchmarks/apps/floor.py); uvicorn: uvicorn's httptools protocol, serving --app",
    )
    ap.add_argument(
        "--app",
        help="with --http uvicorn: the ASGI app it serves, module:attribute of benchmarks/apps "
        "(default: the asgiserve app of --path's service; fastapi_app:app or raw_asgi:app for the peers)",
    )
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("-n", "--requests", type=int, default=2000, help="N: the runs serve N and 2N requests")
    ap.add_argument("--warmup", type=int, default=200, help="requests served before the counted ones")
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times (to see it repeat)")
    ap.add_argument("--root", type=Path, default=REPO, help="the checkout whose asgiserve is measured")
    ap.add_argument("--keep", type=Path, help="keep callgrind's profiles here (for callgrind_annotate)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--access-log", action="store_true", help="with the access log on (lines to /dev/null)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = args.root.resolve()
    if args.inner:
        report = serve(args.path, args.http, args.loop, args.warmup, args.requests, args.access_log, args.app)
        print(json.dumps(report))
        return 0
    if args.path not in PATHS and not args.path.startswith("/predict"):
        ap.error(f"--path is one of {', '.join(sorted(PATHS))} or a predict api of apps/asgiserve_svc.py")
    n = args.requests
    for _ in range(args.repeat):
        t0 = time.monotonic()
        small, info = count(
            root, args.path, args.http, args.loop, args.warmup, n, args.keep, args.access_log, args.app
        )
        large, _ = count(
            root, args.path, args.http, args.loop, args.warmup, 2 * n, args.keep, args.access_log, args.app
        )
        per_call = (large - small) / n
        expected_pkg = root / "asgiserve" / "__init__.py"
        if Path(str(info["asgiserve"])).resolve() != expected_pkg.resolve():
            raise SystemExit(f"measured {info['asgiserve']}, not {expected_pkg}: check PYTHONPATH")
        result = {
            "instructions_per_call": round(per_call, 1),
            "path": args.path,
            "http": args.http,
            "loop": args.loop,
            "access_log": args.access_log,
            "app": args.app,
            "n": n,
            "instr_n": small,
            "instr_2n": large,
            "asgiserve": info["asgiserve"],
            "seconds": round(time.monotonic() - t0, 1),
        }
        if args.json:
            print(json.dumps(result))
        else:
            method = PATHS.get(args.path, PATHS["/predict"])[0]
            kind = f"{method} {args.path}" + (" (direct api call)" if args.path == "/predict" else "")
            print(
                f"{per_call:,.1f} instructions per {kind} ({args.http}, {args.loop}; N={n}: "
                f"{small:,} for N, {large:,} for 2N; {info['asgiserve']}; {result['seconds']} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
