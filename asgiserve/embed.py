"""Serve from Python: ``serve(target, ...)`` and ``Server``, the command line's server without the command line.

Three forms, one ``Server`` object:
- ``await Server(target, **options).serve()`` inside the caller's event loop, uvicorn's way: it runs until
  ``should_exit`` is set or ``await shutdown()``, ``started`` is an event, and other servers and tasks
  share the loop;
- ``serve(target, blocking=False)`` (``Server.start``): the server in a background thread with its own
  loop (one worker) or in a supervisor process with its workers (several), and a handle to wait for it,
  stop it (a graceful drain) and get clients bound to it;
- ``serve(target, blocking=True)``: the command line's behaviour, until SIGINT or SIGTERM.
The first two never touch the caller's signal handlers or logging configuration; the blocking form
installs the command line's handlers for its run and puts the caller's back after. ``target`` is a
``@service`` class, a ``"module:Attr"`` string or any ASGI 3 app; the options are the command line's
flags by their Python names (``Config``'s fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING

from .errors import AsgiserveError
from .server.config import Config, build_app, load_app
from .server.server import STARTUP_FAILED, bind_socket, run_server
from .server.server import Server as _Inner

if TYPE_CHECKING:
    from .client import AsyncHTTPClient, SyncHTTPClient
    from .types import ASGIApp

__all__ = ["Server", "StartupError", "make_config", "resolve", "serve"]

logger = logging.getLogger("asgiserve")
_FIELDS = {f.name: f for f in fields(Config)}
_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}
_NAMED = frozenset({"target", "host", "port", "workers"})  # parameters of their own, not options
_HTTP = ("auto", "httptools", "h11")


class StartupError(AsgiserveError, RuntimeError):
    """The app could not start: its lifespan startup failed, or its supervisor exited (see the message)."""


def make_config(
    target: object, options: Mapping[str, object], host: str = "127.0.0.1", port: int = 3000
) -> Config:
    """A ``Config`` from the command line's flags given by their Python names; ``TypeError`` for a bad one."""
    config = Config(target=target if isinstance(target, str) else "", host=host, port=port)
    for name, value in options.items():
        field = _FIELDS.get(name)
        if field is None or name in _NAMED:
            known = ", ".join(sorted(set(_FIELDS) - _NAMED))
            raise TypeError(f"unknown option {name!r}; the options are: {known}")
        kind = str(field.type)
        want = _KINDS.get(kind.replace(" | None", ""), object)
        if value is None:
            ok = "None" in kind
        else:
            ok = isinstance(value, want) and (kind == "bool" or not isinstance(value, bool))
        if not ok:
            raise TypeError(f"option {name}={value!r}: expected {kind}")
        if name == "http" and value not in _HTTP:
            raise ValueError(f"option http={value!r}: choose one of {', '.join(_HTTP)}")
        setattr(config, name, value)
    return config


def resolve(target: object, config: Config) -> tuple[ASGIApp, int]:
    """The ASGI app for ``target`` (imported first when it is a ``"module:Attr"`` string), and its workers."""
    if isinstance(target, str):
        config.target = target
        return load_app(config)
    return build_app(target, config)


def _loopback(host: str) -> str:
    """Where a client in this program reaches a server bound to ``host``."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


class Server:
    """An asgiserve server for ``target`` in this program: ``await serve()``, or ``start()`` in the background.

    ``workers`` above 1 is for ``start()`` only (the workers are processes). ``port=0`` takes a free port;
    ``url`` says which once the socket is bound.
    """

    def __init__(
        self,
        target: object,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        workers: int = 1,
        **options: object,
    ) -> None:
        self.target = target
        self.config = make_config(target, options, host, port)
        self.workers = workers
        self.started = asyncio.Event()
        self.exit_code: int | None = None
        self._should_exit = False
        self._inner: _Inner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Event | None = None
        self._sock: socket.socket | None = None
        self._port = port
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._pid: int | None = None  # the supervisor process, with several workers

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<asgiserve.Server {self.url} workers={self.workers} {state}>"

    @property
    def url(self) -> str:
        """The server's base URL (with the bound port when ``port=0`` was asked for)."""
        host = _loopback(self.config.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self._port}"

    @property
    def running(self) -> bool:
        """True from start until the server has stopped."""
        if self._pid is not None:
            return True
        if self._thread is not None:
            return self._thread.is_alive()
        return self._inner is not None

    @property
    def should_exit(self) -> bool:
        """Set it (from any thread) to make the server drain and ``serve()`` return."""
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        inner, loop = self._inner, self._loop
        if value and inner is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: it is over already
                loop.call_soon_threadsafe(inner.stop_soon)

    # -- in the caller's loop --------------------------------------------------------------------------

    async def serve(self, sock: socket.socket | None = None) -> None:
        """Serve in the running loop until ``should_exit``; ``StartupError`` when the app failed to start."""
        if self.workers > 1:
            raise ValueError("serve() runs one worker in this loop; use start() for several workers")
        if self._inner is not None:
            raise RuntimeError("the server is already serving")
        if sock is None:
            sock = self._sock or self._bind()
        else:
            self._port = sock.getsockname()[1]
        try:
            app, _ = resolve(self.target, self.config)
        except BaseException:
            if sock is self._sock:
                self._sock = None
                sock.close()
            raise
        await self._serve(app, sock)

    async def shutdown(self) -> None:
        """Drain and wait until ``serve()`` has finished (at once when it is not serving)."""
        finished = self._finished
        self.should_exit = True
        if finished is not None:
            await finished.wait()

    def _bind(self) -> socket.socket:
        sock = self._sock = bind_socket(self.config)
        self._port = sock.getsockname()[1]
        return sock

    async def _serve(self, app: ASGIApp, sock: socket.socket) -> None:
        inner = _Inner(self.config, app, signals=())
        inner.on_started = self._on_started
        self._finished = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._inner = inner
        try:
            self.exit_code = await inner.serve(sock)
        finally:
            self._inner = None
            self._should_exit = False  # for a later serve()
            self._finished.set()
            if sock is self._sock:
                self._sock = None
                sock.close()
        if self.exit_code == STARTUP_FAILED:
            raise StartupError(f"{self.url}: the app failed to start: {inner.failure}")

    def _on_started(self) -> None:
        self.started.set()
        self._ready.set()
        if self._should_exit and self._inner is not None:
            self._inner.stop_soon()

    # -- in the background -----------------------------------------------------------------------------

    def start(self) -> Server:
        """Start serving in a background thread (one worker) or processes (several); returns at once."""
        if self.running:
            raise RuntimeError("the server is already running")
        self._ready.clear()
        self._error = None
        self._should_exit = False
        sock = self._bind()
        try:
            app, _ = resolve(self.target, self.config)
        except BaseException:
            self._sock = None
            sock.close()
            raise
        if self.workers > 1:
            self._fork_supervisor(app, sock)
            return self
        self._thread = threading.Thread(
            target=self._thread_main, args=(app, sock), name=f"asgiserve {self.url}", daemon=True
        )
        self._thread.start()
        return self

    def _thread_main(self, app: ASGIApp, sock: socket.socket) -> None:
        from .http.auto import new_event_loop

        loop = new_event_loop()
        try:
            loop.run_until_complete(self._serve(app, sock))
        except BaseException as exc:
            self._error = exc
            if not isinstance(exc, StartupError):
                logger.exception("the server at %s stopped on an error", self.url)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    def _fork_supervisor(self, app: ASGIApp, sock: socket.socket) -> None:
        from .server.workers import Supervisor

        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the supervisor, in a process group of its own: the caller's Ctrl-C is the caller's
            code = 1
            try:
                os.setpgid(0, 0)
                threading.Thread(target=_follow_parent, args=(parent,), daemon=True).start()
                code = Supervisor(self.config, app, sock, self.workers).run()
            except BaseException:
                logger.exception("supervisor %d crashed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self._pid = pid
        self._sock = None
        sock.close()

    def wait_until_ready(self, timeout: float = 30) -> None:
        """Block until the server answers; ``StartupError`` if it failed, ``TimeoutError`` after ``timeout``."""
        if self._pid is not None:
            self._wait_for_workers(timeout)
            return
        if self._thread is None:
            raise RuntimeError("the server is not started: call start() first")
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.url} is not ready after {timeout:g} s")
        if self._error is not None:
            raise self._error
        if not self.started.is_set():
            raise StartupError(f"{self.url} stopped before it was ready")

    def _wait_for_workers(self, timeout: float) -> None:
        """Poll ``/readyz`` (a service's readiness; any answer but 503 from another app) with backoff."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        host = _loopback(self.config.host)
        while True:
            code = self._reap()
            if code is not None:
                raise StartupError(f"{self.url}: the server exited with status {code} before it was ready")
            conn = http.client.HTTPConnection(host, self._port, timeout=1)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status != 503:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"{self.url} is not ready after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _reap(self, block: bool = False) -> int | None:
        pid = self._pid
        if pid is None:
            return self.exit_code
        done, raw = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return None
        self._pid = None
        self.exit_code = os.waitstatus_to_exitcode(raw)
        return self.exit_code

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop: requests in flight get ``timeout`` seconds (default: ``graceful_timeout``)."""
        if timeout is not None:
            self.config.graceful_timeout = timeout
        grace = self.config.graceful_timeout + 5
        if self._pid is not None:
            _signal(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self._reap() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._pid is not None:
                _signal(self._pid, signal.SIGKILL, group=True)
                self._reap(block=True)
            return
        self.should_exit = True
        if self._thread is not None:
            self._thread.join(grace)

    def __enter__(self) -> Server:
        if not self.running:
            self.start()
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------------

    def get_client(self, timeout: float = 30) -> SyncHTTPClient:
        """A blocking client for this server (its URL and token)."""
        from .client import SyncHTTPClient

        return SyncHTTPClient(self.url, token=self.config.api_token, timeout=timeout)

    def get_async_client(self, timeout: float = 30) -> AsyncHTTPClient:
        """An asyncio client for this server (its URL and token); use it as ``async with``."""
        from .client import AsyncHTTPClient

        return AsyncHTTPClient(self.url, token=self.config.api_token, timeout=timeout)

    # -- blocking, as the command line -----------------------------------------------------------------

    def run(self) -> int:
        """Serve in this thread until SIGINT or SIGTERM, as ``python -m asgiserve`` does; the exit status."""
        sock = self._bind()
        try:
            app, _ = resolve(self.target, self.config)
        except BaseException:
            self._sock = None
            sock.close()
            raise
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.workers > 1:
                from .server.workers import Supervisor

                code = Supervisor(self.config, app, sock, self.workers).run()
            else:
                code = run_server(self.config, app, sock)
        finally:
            self._sock = None
            sock.close()
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self.exit_code = code
        if code == STARTUP_FAILED:
            raise StartupError(f"{self.url}: the app failed to start (see the log)")
        return code


def _signal(pid: int, sig: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _follow_parent(parent: int) -> None:
    """In a supervisor started by ``Server.start``: drain and exit when the program that started it is gone."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def serve(
    target: object,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int = 1,
    blocking: bool = False,
    **options: object,
) -> Server:
    """Serve ``target`` (a ``@service`` class, ``"module:Attr"`` or an ASGI app) from Python.

    ``blocking=False`` starts it in the background and returns the ``Server`` at once (use it in a
    ``with`` block, or ``wait_until_ready`` and ``stop``); ``blocking=True`` serves until SIGINT or SIGTERM
    as the command line does. The options are the command line's flags by their Python names.
    """
    server = Server(target, host=host, port=port, workers=workers, **options)
    if blocking:
        if not logging.getLogger().handlers and not logger.handlers:
            from .cli import setup_logging

            setup_logging(server.config.log_level)
        server.run()
        return server
    return server.start()
