"""HTTPS: the server's TLS settings, from uvicorn's ``--ssl-*`` flags and a service's ``ssl={...}`` config.

The flags and their meanings are uvicorn's, so a command line moves between the two servers unchanged;
the service keys are BentoML's (``certfile``, ``keyfile``, ``keyfile_password``, ``version``,
``cert_reqs``, ``ca_certs``, ``ciphers``, and ``enabled``). A flag (or its ``ASGISERVE_SSL_*`` variable)
wins over the service's key; what neither sets takes uvicorn's default. As in BentoML, TLS is on when a
certificate is given, and ``enabled: True`` without one is an error. Each setting is checked when the
CLI starts (``resolve_tls``), so a bad one is one line and exit status 1, never a worker failing later.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import asyncio
    import socket
    import ssl

    from .config import Config

__all__ = ["SERVICE_SSL_KEYS", "apply_service_ssl", "create_tls_server", "resolve_tls", "tls_context"]

# BentoML's ``SSLSchema`` keys; each but ``enabled`` is the ``ssl_<key>`` field of ``Config``.
SERVICE_SSL_KEYS = ("certfile", "keyfile", "keyfile_password", "version", "cert_reqs", "ca_certs", "ciphers")
_INTS = ("version", "cert_reqs")
_DEFAULT_CIPHERS = "TLSv1"  # uvicorn's default
_SHUTDOWN_TIMEOUT = 5.0  # seconds a closing connection waits for the peer's close_notify


def apply_service_ssl(config: Config, ssl_config: object) -> None:
    """Fill the ``ssl_*`` settings no flag set from a service's ``ssl={...}``; ``ValueError`` when invalid."""
    if ssl_config is None:
        ssl_config = {}
    if not isinstance(ssl_config, Mapping):
        raise ValueError(f"the service's ssl config must be a dict, got {type(ssl_config).__name__}")
    unknown = set(ssl_config) - {"enabled", *SERVICE_SSL_KEYS}
    if unknown:
        raise ValueError(
            f"ssl got unknown key(s) {sorted(unknown)}; known: {sorted({'enabled', *SERVICE_SSL_KEYS})}"
        )
    for key in SERVICE_SSL_KEYS:
        value = ssl_config.get(key)
        if value is None or getattr(config, "ssl_" + key) is not None:
            continue
        if key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ssl.{key} must be an integer, got {value!r}")
        elif isinstance(value, (str, os.PathLike)):
            value = os.fspath(value)
        else:
            raise ValueError(f"ssl.{key} must be a string, got {value!r}")
        setattr(config, "ssl_" + key, value)
    if ssl_config.get("enabled") and not config.ssl_certfile:
        raise ValueError(
            "ssl is enabled but no certificate is given: set ssl={'certfile': ...} or --ssl-certfile"
        )


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's ``SSLContext`` as uvicorn builds it, or None for plain HTTP; ``ValueError``/``OSError``."""
    if not config.ssl_certfile:
        if config.ssl_keyfile:
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        return None
    import ssl

    for flag, path in (("--ssl-certfile", config.ssl_certfile), ("--ssl-keyfile", config.ssl_keyfile)):
        if path and not os.path.isfile(path):
            raise ValueError(f"{flag} {path}: no such file")
    version = ssl.PROTOCOL_TLS_SERVER if config.ssl_version is None else config.ssl_version
    try:
        ctx = ssl.SSLContext(version)
    except ValueError:
        raise ValueError(f"--ssl-version {version} is not a protocol of the ssl module") from None
    # An empty password rather than None: OpenSSL would otherwise prompt on the terminal for an
    # encrypted key, and a server has nobody to answer.
    try:
        ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password or "")
    except ssl.SSLError as exc:
        raise ValueError(
            f"cannot load the certificate {config.ssl_certfile} with key {config.ssl_keyfile or '(in the same file)'}"
            f" (is the key the certificate's, and --ssl-keyfile-password right?): {exc}"
        ) from None
    cert_reqs = config.ssl_cert_reqs or 0
    try:
        ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    except ValueError:
        raise ValueError(
            f"--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required), got {cert_reqs}"
        ) from None
    if config.ssl_ca_certs:
        if not os.path.exists(config.ssl_ca_certs):
            raise ValueError(f"--ssl-ca-certs {config.ssl_ca_certs}: no such file")
        try:
            ctx.load_verify_locations(config.ssl_ca_certs)
        except ssl.SSLError as exc:
            raise ValueError(
                f"--ssl-ca-certs {config.ssl_ca_certs}: not a PEM bundle of certificates: {exc}"
            ) from None
    ciphers = _DEFAULT_CIPHERS if config.ssl_ciphers is None else config.ssl_ciphers
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ValueError(f"--ssl-ciphers {ciphers!r} selects no cipher (an OpenSSL cipher list)") from None
    # HTTP/1.1 is all this server speaks: saying so lets a client that offers h2 settle at once.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def resolve_tls(config: Config, app: object) -> ssl.SSLContext | None:
    """Merge the served service's ``ssl`` config into ``config`` and check the result by building it."""
    spec = getattr(app, "spec", None)
    service_config = getattr(spec, "config", None)
    if isinstance(service_config, Mapping):
        apply_service_ssl(config, service_config.get("ssl"))
    ctx = tls_context(config)
    if ctx is not None and ctx.verify_mode and not config.ssl_ca_certs:
        raise ValueError("--ssl-cert-reqs asks for client certificates: give --ssl-ca-certs to verify them")
    return ctx


async def create_tls_server(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    sock: socket.socket,
    config: Config,
    ctx: ssl.SSLContext,
) -> asyncio.AbstractServer:
    """Serve https on the bound ``sock``: each connection's protocol is made once its handshake is done.

    The handshake must finish within the header deadline (a silent client costs no more than one that
    never sends its head), and a closing connection waits only briefly for the peer's close_notify, so
    a drain is not held up by clients that never answer it.
    """
    options: dict[str, float] = {"ssl_handshake_timeout": config.header_timeout}
    if sys.version_info >= (3, 11) or type(loop).__module__.startswith("uvloop"):
        options["ssl_shutdown_timeout"] = max(0.1, min(_SHUTDOWN_TIMEOUT, config.graceful_timeout))
    # ``ssl_shutdown_timeout`` is a keyword of Python 3.11's asyncio (and of uvloop), past 3.10's stubs.
    create = cast("Callable[..., Awaitable[asyncio.AbstractServer]]", loop.create_server)
    return await create(factory, sock=sock, backlog=config.backlog, ssl=ctx, **options)
