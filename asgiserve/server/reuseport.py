"""``--reuse-port``: one listening socket per worker (SO_REUSEPORT, Linux), the kernel spreading connections.

With the shared socket, every worker waits on one accept queue and whichever wakes first takes the
connection, so a busy worker can take more than its share; with SO_REUSEPORT each worker listens on its
own socket and the kernel hashes each new connection to one of them. The parent binds the port without
listening (``hold``), which keeps the address taken and reports a port in use before anything forks, yet
receives no connections (only listening sockets take part); each worker then binds and listens its own
(``listen``). A worker's queued, not yet accepted connections go with its socket when it exits: that is
the cost of this mode.
"""

from __future__ import annotations

import socket

from .config import Config

__all__ = ["hold", "is_held", "listen"]


def _socket(config: Config, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, port))
    except OSError:
        sock.close()
        raise
    return sock


def hold(config: Config) -> socket.socket:
    """The parent's socket: bound with SO_REUSEPORT, not listening."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--reuse-port needs SO_REUSEPORT (Linux)")
    return _socket(config, config.port)


def is_held(sock: socket.socket) -> bool:
    """Whether ``sock`` is a parent's ``hold`` socket (so that each worker listens on its own)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return False
    reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    return bool(reuse) and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


def listen(config: Config, held: socket.socket) -> socket.socket:
    """A worker's own listening socket on the port of the parent's ``held`` one."""
    sock = _socket(config, held.getsockname()[1])
    sock.listen(config.backlog)
    return sock
