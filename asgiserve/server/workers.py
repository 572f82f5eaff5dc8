"""Prefork process model: N workers share one listening socket; the parent restarts any that die.

The parent binds the socket and imports the app once, then forks. Each worker runs its own event loop
and lifespan, and drains on SIGTERM/SIGINT. The parent closes its copy of the socket, forwards those signals, waits for
every worker (up to the graceful timeout, then SIGKILL), and exits 0. A worker that fails lifespan startup makes the
parent stop all workers and exit with the startup failure status instead of restarting it in a loop.
A worker that dies soon after it started is restarted after a growing delay (0.1 s, doubling up to 10 s),
so a crash that repeats does not spin; one that lived 10 s or more is restarted at once and resets it.
Each worker holds a slot, ``0 .. N-1`` (``server_context.worker_index``, ``ASGISERVE_WORKER_INDEX``); a
replacement takes the slot of the worker it replaces. Their metrics add up through a directory of
snapshots (``shared_metrics.py``) that the parent creates and removes. Under ``--reuse-port`` the parent
only holds the port and each worker listens on a socket of its own (``reuseport.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

from .. import server_context
from . import reuseport, shared_metrics
from .config import Config
from .server import STARTUP_FAILED, run_server

if TYPE_CHECKING:
    from ..types import ASGIApp

__all__ = ["Supervisor"]

logger = logging.getLogger("asgiserve")
_POLL = 0.1
_STABLE = 10.0  # a worker that lived this long was not crash-looping
_FIRST_DELAY = 0.1
_MAX_DELAY = 10.0


class Supervisor:
    """The parent process of ``--workers N``."""

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        sock: socket.socket,
        workers: int,
        devices: list[str] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.sock = sock
        self.count = workers
        self.pids: set[int] = set()
        self.stopping = False
        self.born: dict[int, float] = {}  # pid -> monotonic start time
        self.slots: dict[int, int] = {}  # pid -> worker index
        self.quick_deaths = 0  # workers in a row that died before _STABLE
        self.restarts: list[tuple[float, int]] = []  # (monotonic time, slot) of each replacement to start
        self.metrics_dir = shared_metrics.create_dir()
        self.devices = devices  # CUDA_VISIBLE_DEVICES by slot (``devices.assign``), None: left as it is

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            for pid in self.pids:
                _kill(pid, signal.SIGKILL)
        self.stopping = True

    def spawn(self, slot: int) -> None:
        """Fork the worker of index ``slot``."""
        _flush_std()  # else the child inherits what is buffered, and prints it again
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                server_context.set_worker(slot)
                if self.devices is not None:  # before the service's __init__ (lifespan) can touch CUDA
                    os.environ["CUDA_VISIBLE_DEVICES"] = self.devices[slot]
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                shared = shared_metrics.attach(self.app, self.metrics_dir, slot)
                tick = shared.write if shared is not None else None
                sock = self._worker_socket()
                code = run_server(self.config, self.app, sock, worker=True, every_second=tick)
                if shared is not None:
                    shared.write()  # the counts since the last tick
            except BaseException:
                logger.exception("worker %d crashed", os.getpid())
            finally:
                logging.shutdown()
                _flush_std()  # os._exit skips it: what the service printed to a pipe or file would be lost
                os._exit(code)
        self.pids.add(pid)
        self.born[pid] = time.monotonic()
        self.slots[pid] = slot
        logger.info("Started worker %d (index %d)", pid, slot)

    def _worker_socket(self) -> socket.socket:
        """The shared listening socket, or under ``--reuse-port`` this worker's own."""
        if not reuseport.is_held(self.sock):
            return self.sock
        own = reuseport.listen(self.config, self.sock)
        self.sock.close()  # the parent keeps the port held
        return own

    def replace(self, pid: int, code: int) -> None:
        """Schedule a replacement for the worker ``pid`` that exited with ``code``, backing off on quick deaths."""
        now = time.monotonic()
        lived = now - self.born.pop(pid, now)
        if lived >= _STABLE:
            self.quick_deaths = 0
            delay = 0.0
        else:
            self.quick_deaths += 1
            delay = min(_FIRST_DELAY * 2 ** (self.quick_deaths - 1), _MAX_DELAY)
        logger.warning(
            "Worker %d exited with status %d after %.1f s: restarting in %.1f s", pid, code, lived, delay
        )
        slot = self.slots.pop(pid, 0)
        shared_metrics.retire(self.metrics_dir, slot, pid)  # before a replacement writes that slot's file
        self.restarts.append((now + delay, slot))

    def run(self) -> int:
        """Start the workers, keep them running until a signal, stop them; return the exit status."""
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        for slot in range(self.count):
            self.spawn(slot)
        # Only the first start of the first workers is fatal (the service cannot start at all); a
        # replacement that fails to start is retried with the backoff while the others keep serving.
        first = set(self.pids)
        status = 0
        while not self.stopping:
            for pid, code in self._reap():
                if code == STARTUP_FAILED and pid in first:
                    logger.error("Worker %d failed to start: stopping", pid)
                    self.stopping = True
                    status = STARTUP_FAILED
                elif not self.stopping:
                    if code == STARTUP_FAILED:
                        logger.error("Replacement worker %d failed to start: the others keep serving", pid)
                    self.replace(pid, code)
                first.discard(pid)
            now = time.monotonic()
            if self.restarts and not self.stopping:
                due = [slot for t, slot in self.restarts if t <= now]
                self.restarts = [(t, slot) for t, slot in self.restarts if t > now]
                for slot in due:
                    self.spawn(slot)
            time.sleep(_POLL)
        # The parent's copy of the listening socket goes first: while any copy is open the kernel keeps
        # queueing connections, and the last close resets those nobody accepted. Each worker takes its
        # queue's connections as it closes its own copy, so once the workers' copies are gone as well,
        # a new connection is refused at once.
        self.sock.close()
        for pid in self.pids:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_timeout + 5
        while self.pids and time.monotonic() < deadline:
            self._reap()
            time.sleep(_POLL)
        for pid in self.pids:
            _kill(pid, signal.SIGKILL)
        while self.pids:
            self._reap(block=True)
        shared_metrics.remove_dir(self.metrics_dir)
        return status

    def _reap(self, block: bool = False) -> list[tuple[int, int]]:
        done = []
        while self.pids:
            try:
                pid, raw = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.pids.clear()
                break
            if pid == 0:
                break
            self.pids.discard(pid)
            done.append((pid, os.waitstatus_to_exitcode(raw)))
            if block:
                break
        return done


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing to keep
            pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
