"""Shared by the client tests (tests import this; it is not a test module): the client test service on any
runner, and scripted socket servers whose every accepted connection runs a function in a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from tests.conftest import ServerProc

MODULE = "tests.apps.client_svc"


def start_svc(
    run_server: Callable[..., ServerProc], runner: str, *extra: str, token: bool = False, **kw: object
) -> ServerProc:
    """Run ``ClientSvc`` under ``runner``, with the API token ``s3cret`` when ``token``."""
    if runner == "uvicorn":
        target = f"{MODULE}:{'app_token' if token else 'app'}"
        return run_server(runner, target, *extra, **kw)
    args = ("--api-token", "s3cret") if token else ()
    return run_server(runner, f"{MODULE}:ClientSvc", *args, *extra, **kw)


def read_request(conn: socket.socket) -> bytes:
    """Read one request head from ``conn`` (b"" when the client closed first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


class Script:
    """A listening socket whose accepted connections are served by ``handle(index, conn)`` in a thread."""

    def __init__(self, handle: Callable[[int, socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.handle = handle
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(10)
            threading.Thread(target=self._serve, args=(self.accepted, conn), daemon=True).start()

    def _serve(self, index: int, conn: socket.socket) -> None:
        with conn:
            try:
                self.handle(index, conn)
            except OSError:
                pass

    def close(self) -> None:
        """Stop accepting (connections already accepted keep their thread)."""
        self.sock.close()
