"""``--reload``: serve from a forked child, and start a fresh one when a Python file changes.

The parent binds the socket and never imports the app, so each child imports it afresh. It polls the
modification times of the ``*.py`` files under the watched directories four times a second (skipping
virtualenvs, caches, VCS and hidden directories): the standard library is enough for a development loop,
where inotify through a compiled dependency (watchfiles) would save a few milliseconds of ``stat`` calls a
second and add a wheel to every install. On a change the child gets SIGTERM and drains as in production
(in-flight requests finish); the next one starts once it is gone, and meanwhile new connections wait in
the socket's backlog, so no request is refused. A child that fails to start is reported, and the next
change tries again. SIGTERM or SIGINT stop the child, then the parent, with status 0.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

__all__ = ["Reloader", "python_files"]

logger = logging.getLogger("asgiserve")
_SKIP = {"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist"}
_POLL = 0.25


def python_files(dirs: Iterable[Path]) -> dict[str, tuple[int, int]]:
    """Every ``*.py`` file under ``dirs`` with its modification time (ns) and size."""
    seen: dict[str, tuple[int, int]] = {}
    for root in dirs:
        for here, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if d not in _SKIP and not d.startswith(".")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(here, name)
                    try:
                        st = os.stat(path)
                        seen[path] = (st.st_mtime_ns, st.st_size)
                    except OSError:  # removed between the listing and the stat
                        pass
    return seen


class Reloader:
    """Runs ``serve`` in a forked child and replaces the child when a watched file changes."""

    def __init__(self, dirs: list[Path], serve: Callable[[], int], graceful_timeout: float) -> None:
        self.dirs = [d.resolve() for d in dirs]
        self.serve = serve
        self.graceful_timeout = graceful_timeout
        self.child = 0
        self.stopping = False

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def spawn(self) -> None:
        """Fork a child that imports the app and serves it."""
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns a Ctrl-C into SIGTERM
                code = self.serve()
            except BaseException:
                logger.exception("the server process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.child = pid

    def stop_child(self) -> int | None:
        """SIGTERM the child and wait for its drain (SIGKILL past the graceful timeout); its status."""
        pid, self.child = self.child, 0
        if not pid:
            return None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + self.graceful_timeout + 5
        while time.monotonic() < deadline:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(raw)
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    def run(self) -> int:
        """Serve and reload until a signal; return the exit status."""
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        logger.info("Reloading on changes to *.py under %s", ", ".join(map(str, self.dirs)))
        files = python_files(self.dirs)
        self.spawn()
        while not self.stopping:
            time.sleep(_POLL)
            if self.child:
                done, raw = os.waitpid(self.child, os.WNOHANG)
                if done:
                    self.child = 0
                    code = os.waitstatus_to_exitcode(raw)
                    logger.error("The server exited with status %d: waiting for a change to restart it", code)
            now = python_files(self.dirs)
            if now != files:
                changed = sorted(p for p in now.keys() | files.keys() if now.get(p) != files.get(p))
                files = now
                logger.info("Reloading: %s changed", ", ".join(_short(p) for p in changed[:3]))
                self.stop_child()
                if not self.stopping:
                    self.spawn()
        self.stop_child()
        return 0


def _short(path: str) -> str:
    here = os.path.relpath(path)
    return path if here.startswith("..") else here
