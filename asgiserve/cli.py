"""``python -m asgiserve module:Class``: flags (each with an ``ASGISERVE_*`` variable) -> Config -> serve.

Exit statuses follow uvicorn's: 0 after a clean stop, 1 for a target that cannot be loaded or an address
that cannot be bound, 2 for a usage error, 3 for a startup that failed (the service's ``__init__`` or a
mounted app's lifespan raised). Each failure is one line saying what and where; the traceback follows
only at ``--log-level debug``.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .errors import origin
from .server.config import Config, load_app

__all__ = ["LOAD_FAILED", "USAGE", "JSONFormatter", "build_parser", "main", "setup_logging"]

LOAD_FAILED = 1  # the target cannot be imported, or the address cannot be bound
USAGE = 2  # a usage error (argparse's own status for bad flags)

_HELP = {
    "host": "interface to bind",
    "port": "TCP port to bind",
    "workers": "worker processes sharing the socket (default: the service's workers config, else 1)",
    "http": "HTTP parser: auto (httptools when installed), httptools or h11",
    "log_level": "debug, info, warning, error or critical (debug adds tracebacks to startup errors)",
    "log_format": "text, or json: one JSON object per line (access lines included), for log shippers",
    "access_log": "log one line per request: method, path, status, bytes, duration, client, request id",
    "api_token": "require 'Authorization: Bearer TOKEN' on a service's apis (probes and /metrics stay open)",
    "allow_private_urls": "let file inputs given as URLs reach private, loopback and link-local addresses",
    "app_dir": "directory put first on sys.path before importing the target",
    "open_inference": "also serve the Open Inference Protocol (KServe v2 REST) at /v2 for every api",
    "root_path": "ASGI root_path for apps served behind a path prefix",
    "max_header_size": "largest request head in bytes (431 above)",
    "max_headers": "most header fields per request (431 above)",
    "max_url_size": "longest request target in bytes (414 above)",
    "max_body_size": "largest request body in bytes (413 above)",
    "keep_alive_timeout": "seconds an idle keep-alive connection stays open",
    "header_timeout": "seconds a client has to send a complete request head",
    "body_timeout": "seconds a request body may go without a byte (408 after)",
    "body_min_rate": "bytes per second a request body must average once body-timeout has passed (0: off)",
    "max_connections": "most open connections per worker (503 above)",
    "graceful_timeout": "seconds in-flight requests get to finish on SIGTERM",
    "backlog": "listen backlog",
}
_CHOICES = {
    "http": ["auto", "httptools", "h11"],
    "log_level": ["debug", "info", "warning", "error", "critical"],
    "log_format": ["text", "json"],
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


def _variable(dest: str) -> str:
    return "ASGISERVE_" + dest.upper()


def _scale_help() -> dict[str, str]:
    """The help of the flags for several workers, devices and sockets."""
    return {
        "devices": "GPUs for the workers, as 0,1,...: each worker gets one, round-robin (CUDA_VISIBLE_DEVICES)",
        "workers_per_device": "workers per device of --devices (all visible GPUs when --devices is not given)",
        "reuse_port": "one listening socket per worker (SO_REUSEPORT, Linux): the kernel spreads connections",
    }


_HELP.update(_scale_help())


def _env(name: str) -> str | None:
    return os.environ.get(_variable(name))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults come from ``ASGISERVE_*`` variables, then ``Config``."""
    p = argparse.ArgumentParser(
        prog="asgiserve",
        description="Serve an asgiserve service or any ASGI 3 app.",
        epilog="Each flag's default is read from the variable in brackets when it is set. Exit status: 0 "
        "stopped, 1 target not loadable or address not bindable, 2 usage, 3 startup failed.",
    )
    p.add_argument("--version", action="version", version=f"asgiserve {__version__}")
    p.add_argument("target", nargs="?", default=_env("target"), help="module:Class, module:app or module")
    for f in fields(Config):
        if f.name == "target":
            continue
        flag = "--" + f.name.replace("_", "-")
        raw = _env(f.name)
        help_text = _HELP.get(f.name, f.name.replace("_", " "))
        if f.type == "bool":
            default = f.default if raw is None else raw.lower() in _TRUE
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).replace(" | None", ""), str)
        try:
            default = f.default if raw is None else kind(raw)
        except ValueError:
            p.error(f"{_variable(f.name)}={raw!r} is not a valid {kind.__name__}")
        extra: dict[str, Any] = {"choices": _CHOICES[f.name]} if f.name in _CHOICES else {}
        p.add_argument(flag, type=kind, default=default, help=help_text, **extra)
    _add_dev_flags(p)
    _name_variables(p)
    return p


def _add_dev_flags(p: argparse.ArgumentParser) -> None:
    """``--reload`` and ``--reload-dir``: development only, off unless asked for."""
    raw = _env("reload")
    p.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=raw is not None and raw.lower() in _TRUE,
        help="restart the server when a .py file under the app dir or a --reload-dir changes "
        "(one worker; for development, never on by default)",
    )
    dirs = _env("reload_dir")
    p.add_argument(
        "--reload-dir",
        action="append",
        default=dirs.split(os.pathsep) if dirs else None,
        metavar="DIR",
        help=f"another directory to watch with --reload (repeatable; the variable takes a '{os.pathsep}'-"
        "separated list)",
    )


def _name_variables(p: argparse.ArgumentParser) -> None:
    """Each flag's help names its ``ASGISERVE_*`` variable (flags added by other parts of the CLI too)."""
    for action in p._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            action.help = f"{action.help or ''} [{_variable(action.dest)}]"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` (and ``traceback``)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (control characters escaped)."""
        stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        out: dict[str, object] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JSONFormatter() if fmt == "json" else logging.Formatter("%(levelname)s: %(message)s")
    )
    root = logging.getLogger("asgiserve")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _debug_info(log: logging.Logger, exc: BaseException) -> BaseException | None:
    return exc if log.isEnabledFor(logging.DEBUG) else None


def _load(config: Config) -> tuple[Any, int] | None:
    """Import the target, or log one line saying why it cannot be (None)."""
    log = logging.getLogger("asgiserve")
    module = config.target.partition(":")[0]
    try:
        return load_app(config)
    except ModuleNotFoundError as exc:
        parts = module.split(".")
        if exc.name in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            app_dir = Path(config.app_dir).resolve()
            log.error(
                "Could not load %r: no module named %r in the app dir %s or on sys.path "
                "(run from the service's directory or pass --app-dir)",
                config.target,
                exc.name,
                app_dir,
                exc_info=_debug_info(log, exc),
            )
            return None
        failure: BaseException = exc
    except ValueError as exc:  # load_app's own verdict: the message says it all
        log.error("Could not load %r: %s", config.target, exc, exc_info=_debug_info(log, exc))
        return None
    except Exception as exc:
        failure = exc
    place = origin(failure)
    log.error(
        "Could not load %r: importing %s raised %s: %s%s",
        config.target,
        module,
        type(failure).__name__,
        failure,
        f" (at {place})" if place else "",
        exc_info=_debug_info(log, failure),
    )
    return None


def _bind(config: Config, workers: int = 1) -> socket.socket | None:
    """The listening socket (``_listening_socket``), or one line saying why it cannot be bound (None)."""
    try:
        return _listening_socket(config, workers)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why = "the address is already in use (another server? pick another --port)"
        logging.getLogger("asgiserve").error("Could not bind %s:%d: %s", config.host, config.port, why)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``asgiserve`` and ``python -m asgiserve``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.target:
        print("asgiserve: error: a target (module:Class, module:app or module) is required", file=sys.stderr)
        return USAGE
    config = Config(**{f.name: getattr(args, f.name) for f in fields(Config)})
    setup_logging(config.log_level, config.log_format)
    if config.open_inference:  # read where the app is built, in this process and the workers
        os.environ["ASGISERVE_OPEN_INFERENCE"] = "1"
    given = sys.argv[1:] if argv is None else argv
    if args.reload:
        return _reload(config, args.reload_dir or [], given)
    loaded = _load(config)
    if loaded is None:
        return LOAD_FAILED
    app, default_workers = loaded
    failed = _prepare(config, app, given)
    if failed is not None:
        return failed
    planned = _plan_devices(config, app, default_workers)
    if planned is None:
        return 3
    workers, devices = planned
    sock = _bind(config, workers)
    if sock is None:
        return LOAD_FAILED
    from .server.server import run_server
    from .server.workers import Supervisor

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


def _prepare(config: Config, app: object, argv: Sequence[str]) -> int | None:
    """The service's defaults and TLS settings, then its deployment hooks (once, in this process, before
    any worker forks); the exit status when one of them fails, else None."""
    _service_defaults(config, app, argv)
    if not _check_tls(config, app):
        return LOAD_FAILED
    deploy = getattr(app, "deploy", None)
    if callable(deploy):
        try:
            deploy()
        except Exception as exc:
            log = logging.getLogger("asgiserve")
            log.error("Deployment of %r failed: %s", config.target, exc, exc_info=_debug_info(log, exc))
            return 3
    return None


def _reload(config: Config, dirs: list[str], argv: Sequence[str]) -> int:
    """``--reload``: this process binds and watches; each forked child imports the app afresh and serves."""
    from .server.reload import Reloader

    if config.workers > 1:
        print("asgiserve: error: --reload serves with one worker: drop --workers", file=sys.stderr)
        return USAGE
    sock = _bind(config)
    if sock is None:
        return LOAD_FAILED

    def serve() -> int:
        from .server.server import run_server

        loaded = _load(config)
        if loaded is None:
            return LOAD_FAILED
        failed = _prepare(config, loaded[0], argv)
        if failed is not None:
            return failed
        return run_server(config, loaded[0], sock, worker=True)

    try:
        return Reloader([Path(config.app_dir), *map(Path, dirs)], serve, config.graceful_timeout).run()
    finally:
        sock.close()


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
