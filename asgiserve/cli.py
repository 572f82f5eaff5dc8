"""``python -m asgiserve module:Class``: flags (each with an ``ASGISERVE_*`` variable) -> Config -> serve."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import fields

from .server.config import Config, load_app

__all__ = ["build_parser", "main"]

_HELP = {
    "host": "interface to bind",
    "port": "TCP port to bind",
    "workers": "worker processes sharing the socket (default: the service's workers config, else 1)",
    "http": "HTTP parser: auto (httptools when installed), httptools or h11",
    "log_level": "debug, info, warning, error or critical",
    "access_log": "log one line per request",
    "api_token": "require 'Authorization: Bearer TOKEN' on a service's apis (probes and /metrics stay open)",
    "allow_private_urls": "let file inputs given as URLs reach private, loopback and link-local addresses",
    "app_dir": "directory put first on sys.path before importing the target",
    "root_path": "ASGI root_path for apps served behind a path prefix",
    "max_header_size": "largest request head in bytes (431 above)",
    "max_headers": "most header fields per request (431 above)",
    "max_url_size": "longest request target in bytes (414 above)",
    "max_body_size": "largest request body in bytes (413 above)",
    "keep_alive_timeout": "seconds an idle keep-alive connection stays open",
    "header_timeout": "seconds a client has to send a complete request head",
    "max_connections": "most open connections per worker (503 above)",
    "graceful_timeout": "seconds in-flight requests get to finish on SIGTERM",
    "backlog": "listen backlog",
}
_TRUE = {"1", "true", "yes", "on"}
_HELP.update(
    {
        "ssl_certfile": "TLS certificate (PEM, chain included): serve https (default: the service's ssl.certfile)",
        "ssl_keyfile": "TLS private key (PEM; default: in the certificate file)",
        "ssl_keyfile_password": "password of an encrypted --ssl-keyfile",
        "ssl_version": "ssl module protocol number for the server context (default 17, PROTOCOL_TLS_SERVER)",
        "ssl_cert_reqs": "client certificates: 0 not asked (default), 1 optional, 2 required (needs --ssl-ca-certs)",
        "ssl_ca_certs": "CA bundle (PEM) that client certificates are verified against",
        "ssl_ciphers": "OpenSSL cipher list for TLS 1.2 and below (default 'TLSv1')",
    }
)


def _scale_help() -> dict[str, str]:
    """The help of the flags for several workers, devices and sockets."""
    return {
        "devices": "GPUs for the workers, as 0,1,...: each worker gets one, round-robin (CUDA_VISIBLE_DEVICES)",
        "workers_per_device": "workers per device of --devices (all visible GPUs when --devices is not given)",
        "reuse_port": "one listening socket per worker (SO_REUSEPORT, Linux): the kernel spreads connections",
    }


_HELP.update(_scale_help())


def _env(name: str) -> str | None:
    return os.environ.get("ASGISERVE_" + name.upper())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults come from ``ASGISERVE_*`` variables, then ``Config``."""
    p = argparse.ArgumentParser(prog="asgiserve", description="Serve an asgiserve service or any ASGI 3 app.")
    p.add_argument("target", nargs="?", default=_env("target"), help="module:Class, module:app or module")
    for f in fields(Config):
        if f.name == "target":
            continue
        flag = "--" + f.name.replace("_", "-")
        raw = _env(f.name)
        if f.type == "bool":
            default = f.default if raw is None else raw.lower() in _TRUE
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=_HELP[f.name])
            continue
        kind = {"int": int, "int | None": int, "float": float}.get(str(f.type), str)
        default = f.default if raw is None else kind(raw)
        extra = {"choices": ["auto", "httptools", "h11"]} if f.name == "http" else {}
        if f.name == "log_level":
            extra = {"choices": ["debug", "info", "warning", "error", "critical"]}
        p.add_argument(flag, type=kind, default=default, help=_HELP[f.name], **extra)  # type: ignore[arg-type]
    return p


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("asgiserve")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``asgiserve`` and ``python -m asgiserve``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.target:
        print("asgiserve: error: a target (module:Class, module:app or module) is required", file=sys.stderr)
        return 2
    config = Config(**{f.name: getattr(args, f.name) for f in fields(Config)})
    setup_logging(config.log_level)
    log = logging.getLogger("asgiserve")
    try:
        app, default_workers = load_app(config)
    except (ImportError, ValueError) as exc:
        log.error("Could not load %r: %s", config.target, exc)
        return 1
    _service_defaults(config, app, sys.argv[1:] if argv is None else argv)
    if not _check_tls(config, app):
        return 1
    deploy = getattr(app, "deploy", None)
    if callable(deploy):
        try:  # once, in this process, before any worker forks
            deploy()
        except Exception as exc:
            log.exception("Deployment of %r failed: %s", config.target, exc)
            return 3
    from .server.server import run_server
    from .server.workers import Supervisor

    planned = _plan_devices(config, app, default_workers)
    if planned is None:
        return 3
    workers, devices = planned
    try:
        sock = _listening_socket(config, workers)
    except OSError as exc:
        log.error("Could not bind %s:%d: %s", config.host, config.port, exc)
        return 1
    if workers <= 1:
        if devices:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
        try:
            code = run_server(config, app, sock)
        finally:
            sock.close()
        _exit_past_stuck_threads(code)
        return code
    return Supervisor(config, app, sock, workers, devices=devices).run()


def _listening_socket(config: Config, workers: int) -> socket.socket:
    """The shared listening socket; under ``--reuse-port`` with several workers, the port only held."""
    from .server import reuseport
    from .server.server import bind_socket

    if config.reuse_port and workers > 1:
        return reuseport.hold(config)
    return bind_socket(config)


def _plan_devices(config: Config, app: object, default_workers: int) -> tuple[int, list[str] | None] | None:
    """The worker count and each worker's CUDA_VISIBLE_DEVICES; None (logged) when the GPUs are not there."""
    from .devices import DeviceError, DeviceShortage, assign

    spec = getattr(app, "spec", None)
    resources = getattr(spec, "resources", None) or {}
    raw = getattr(spec, "config", None) or {}
    # --devices / --workers-per-device decide the count when --workers was not given.
    open_count = not config.workers and (config.devices is not None or config.workers_per_device > 0)
    try:
        return assign(
            resources,
            0 if open_count else config.workers or default_workers,
            devices=config.devices,
            per_device=config.workers_per_device,
            cpu_count_workers=raw.get("workers") == "cpu_count",
        )
    except DeviceShortage as exc:
        logging.getLogger("asgiserve").warning("%s: %s", getattr(spec, "name", config.target), exc)
        return config.workers or default_workers, None
    except DeviceError as exc:
        name = getattr(spec, "name", config.target)
        logging.getLogger("asgiserve").error("Cannot start %s: %s", name, exc)
        return None


def _service_defaults(config: Config, app: object, argv: Sequence[str]) -> None:
    """The service's ``http.host`` / ``http.port`` stand in for flags and variables not given."""
    spec = getattr(app, "spec", None)
    for name in ("host", "port"):
        value = getattr(spec, name, None)
        flag = "--" + name
        given = _env(name) is not None or any(a == flag or a.startswith(flag + "=") for a in argv)
        if value is not None and not given:
            setattr(config, name, value)


def _check_tls(config: Config, app: object) -> bool:
    """Take the service's ``ssl`` config into ``config`` and check the TLS settings; log why not."""
    from .server.tls import resolve_tls

    try:
        resolve_tls(config, app)
    except (OSError, ValueError) as exc:
        logging.getLogger("asgiserve").error("TLS: %s", exc)
        return False
    return True


def _exit_past_stuck_threads(code: int, grace: float = 2.0) -> None:
    """Exit now if a thread (a sync api still running after the graceful timeout) would hold the process."""
    deadline = time.monotonic() + grace
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                logging.getLogger("asgiserve").warning("Exiting with work still running in thread %s", t.name)
                logging.shutdown()
                os._exit(code)
