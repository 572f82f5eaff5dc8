"""What both clients share and that does no I/O: the service URL, default headers, the schema and its
api table, the bytes of a plain request, and ``ClientResponse``."""

from __future__ import annotations

import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable
from typing import TypedDict, Union

import msgspec

from .endpoints import Endpoint, raise_for_status
from .wire import Headers, Response, encode_head, header_list

__all__ = ["ApiMethod", "ClientBase", "ClientResponse", "PoolOptions", "Verify", "tls_context"]

# Api names that would hide a client attribute keep no method (``call(name)`` still reaches them).
_RESERVED = frozenset({"call", "close", "is_ready", "request", "endpoints", "url", "pool", "schema"})
_USER_AGENT = "asgiserve-client/0.1"

ApiMethod = Callable[..., object]
"""A method made for one api: a plain function, a coroutine function or one returning an iterator."""

Verify = Union[bool, str, "os.PathLike[str]", ssl.SSLContext]
"""How an https client checks the server: the system's trust store (True), a CA bundle file or directory,
no check at all (False), or a ready ``SSLContext`` (client certificates, pinned protocol versions)."""


def tls_context(verify: Verify) -> ssl.SSLContext:
    """The client ``SSLContext`` for ``verify``; ``ValueError`` for a CA path that does not exist."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return ssl.create_default_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
    if verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    path = os.fspath(verify)
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    if os.path.isfile(path):
        return ssl.create_default_context(cafile=path)
    raise ValueError(f"verify={path!r}: no such CA bundle file or directory")


class PoolOptions(TypedDict):
    """The connection pool settings a client derives from its URL and timeout."""

    ssl_context: ssl.SSLContext | None
    max_connections: int
    connect_timeout: float
    read_timeout: float | None


class ClientResponse:
    """The answer to ``client.request(...)``: status, headers (lower-case names) and body."""

    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status}, {len(self.content)} bytes>"

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> object:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.content)

    def raise_for_status(self) -> None:
        """Raise the typed ``HTTPError`` when the status is 400 or above."""
        resp = Response()
        resp.status, resp.headers = self.status, self.headers
        raise_for_status(resp, self.content)


class ClientBase:
    """URL, headers and schema handling shared by both clients."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float,
        server_ready_timeout: float | None,
        verify: Verify = True,
    ) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self._tls = tls_context(verify) if parts.scheme == "https" else None
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        self._host = self._hostname if default_port else f"{self._hostname}:{self._port}"
        if ":" in self._hostname:
            self._host = f"[{self._hostname}]" + ("" if default_port else f":{self._port}")
        self._base = parts.path.rstrip("/")
        self._headers = [("User-Agent", _USER_AGENT)]
        if token:
            self._headers.append(("Authorization", f"Bearer {token}"))
        self.timeout = timeout
        self.server_ready_timeout = timeout if server_ready_timeout is None else server_ready_timeout
        self.endpoints: dict[str, Endpoint] = {}
        self.schema: dict[str, object] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} apis={list(self.endpoints)}>"

    def _pool_options(self, max_connections: int) -> PoolOptions:
        return {
            "ssl_context": self._tls,
            "max_connections": max_connections,
            "connect_timeout": min(self.timeout, 10.0),
            "read_timeout": self.timeout,
        }

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="asgiserve-client-")
        return self._tmp.name

    def _cleanup_files(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    def _encode_plain(
        self, method: str, path: str, json: object, content: bytes | str | None, headers: Headers | None
    ) -> bytes:
        """A whole request for ``request()``: the client's headers unless overridden, then the body."""
        extra = header_list(headers)
        if json is not None:
            body = msgspec.json.encode(json)
            extra.append(("Content-Type", "application/json"))
        else:
            body = content.encode() if isinstance(content, str) else content or b""
        names = {k.lower() for k, _ in extra}
        base = [h for h in self._headers if h[0].lower() not in names]
        target = self._base + (path if path.startswith("/") else "/" + path)
        method = method.upper()
        head = encode_head(method, target, self._host, base + extra)
        if body or method in ("POST", "PUT", "PATCH"):
            head += b"Content-Length: %d\r\n" % len(body)
        return head + b"\r\n" + body

    def _set_schema(self, schema: object, make: Callable[[Endpoint], ApiMethod]) -> None:
        """Keep the schema and attach a method per api, made by ``make``."""
        if not isinstance(schema, dict):
            raise TypeError(f"{self.url}/schema.json is not a JSON object")
        self.schema = schema
        routes = schema.get("routes")
        for route in routes if isinstance(routes, list) else ():
            if not isinstance(route, dict):
                continue
            ep = Endpoint(route, self._host, self._base, self._headers)
            self.endpoints[ep.name] = ep
            if ep.name not in _RESERVED and ep.name.isidentifier():
                method = make(ep)
                method.__name__ = ep.name
                method.__doc__ = ep.doc
                method.__signature__ = ep.signature  # type: ignore[attr-defined]
                setattr(self, ep.name, method)

    def _endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise TypeError(f"the service has no api named {name!r}") from None
