"""CORS for a service (``http={"cors": {...}}``, BentoML's keys), answering as Starlette's CORSMiddleware
does for the same settings, so that a service moved from BentoML (which uses that middleware) keeps its
exact headers.

The rules, after the Fetch standard's CORS protocol:

- a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered here, 200
  ``OK`` or 400 ``Disallowed CORS origin, method, headers``: it never reaches an api or a mounted app, and
  takes no concurrency slot (the gate lies behind this layer);
- any other request passes through, and its response head gains the simple headers (allow-credentials,
  expose-headers, ``*`` for allow-all), the request's origin echoed when it is allowed and must be named,
  and ``Vary: Origin``.

Built once from the settings; header bytes are prepared at build time. A service without CORS has no such
layer at all.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping

from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORS", "cors_options"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
SAFELISTED = frozenset({"Accept", "Accept-Language", "Content-Language", "Content-Type"})
_PREFLIGHT_VARY = (
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network"
)
_TEXT = b"text/plain; charset=utf-8"
# BentoML's keys and the option each one sets.
_KEYS = {
    "access_control_allow_origins": "allow_origins",
    "access_control_allow_methods": "allow_methods",
    "access_control_allow_headers": "allow_headers",
    "access_control_allow_credentials": "allow_credentials",
    "access_control_allow_origin_regex": "allow_origin_regex",
    "access_control_max_age": "max_age",
    "access_control_expose_headers": "expose_headers",
}


def _names(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"http.cors.{key} must be a string or a list of strings, got {value!r}")


def cors_options(cors: Mapping[str, object]) -> dict[str, object] | None:
    """The checked options of a ``cors`` mapping, or None when CORS is not enabled. Raises on a bad key."""
    unknown = set(cors) - set(_KEYS) - {"enabled"}
    if unknown:
        raise TypeError(
            f"http.cors got unknown key(s) {sorted(unknown)}; known: {sorted({*_KEYS, 'enabled'})}"
        )
    if not cors.get("enabled"):
        return None
    out: dict[str, object] = {}
    for key, option in _KEYS.items():
        value = cors.get(key)
        if value is None:
            continue  # the option keeps its default, as in BentoML
        if option in ("allow_credentials",):
            if not isinstance(value, bool):
                raise TypeError(f"http.cors.{key} must be a bool, got {value!r}")
        elif option == "max_age":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"http.cors.{key} must be an int, got {value!r}")
        elif option == "allow_origin_regex":
            if not isinstance(value, str):
                raise TypeError(f"http.cors.{key} must be a string, got {value!r}")
            re.compile(value)
        else:
            value = _names(value, key)
        out[option] = value
    if "allow_origins" not in out and "allow_origin_regex" not in out:
        raise ValueError("http.cors is enabled but access_control_allow_origins is not set")
    return out


class CORS:
    """ASGI middleware applying the CORS rules of the module docstring in front of ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: list[str] | tuple[str, ...] = (),
        allow_methods: list[str] | tuple[str, ...] = ("GET",),
        allow_headers: list[str] | tuple[str, ...] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        expose_headers: list[str] | tuple[str, ...] = (),
        max_age: int = 600,
    ) -> None:
        self.app = app
        methods = ALL_METHODS if "*" in allow_methods else tuple(allow_methods)
        self.allow_methods = frozenset(methods)
        self.origins = frozenset(allow_origins)
        self.all_origins = "*" in allow_origins
        self.all_headers = "*" in allow_headers
        self.regex = re.compile(allow_origin_regex) if allow_origin_regex is not None else None
        self.credentials = allow_credentials
        # The origin is named (not "*") in a preflight unless every origin is allowed without credentials.
        self.explicit = not self.all_origins or allow_credentials
        simple: list[tuple[bytes, bytes]] = []
        if self.all_origins:
            simple.append((b"access-control-allow-origin", b"*"))
        if allow_credentials:
            simple.append((b"access-control-allow-credentials", b"true"))
        if expose_headers:
            simple.append((b"access-control-expose-headers", ", ".join(expose_headers).encode()))
        self.simple = simple
        self.simple_names = frozenset(name for name, _ in simple)
        allowed = sorted(SAFELISTED | set(allow_headers))
        self.allow_headers = frozenset(h.lower() for h in allowed)
        pre: list[tuple[bytes, bytes]] = [(b"vary", _PREFLIGHT_VARY)]
        if not self.explicit:
            pre.append((b"access-control-allow-origin", b"*"))
        pre.append((b"access-control-allow-methods", ", ".join(methods).encode()))
        pre.append((b"access-control-max-age", str(max_age).encode()))
        if allowed and not self.all_headers:
            pre.append((b"access-control-allow-headers", ", ".join(allowed).encode()))
        if allow_credentials:
            pre.append((b"access-control-allow-credentials", b"true"))
        self.preflight_headers = pre

    def allowed(self, origin: str) -> bool:
        """Whether a request from ``origin`` may read the response."""
        if self.all_origins:
            return True
        if self.regex is not None and self.regex.fullmatch(origin):
            return True
        return origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = method_asked = asked_headers = private = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1") if origin is None else origin
            elif name == b"access-control-request-method":
                method_asked = value.decode("latin-1") if method_asked is None else method_asked
            elif name == b"access-control-request-headers":
                asked_headers = value.decode("latin-1") if asked_headers is None else asked_headers
            elif name == b"access-control-request-private-network":
                private = value
        if origin is not None and method_asked is not None and scope["method"] == "OPTIONS":
            await self.preflight(send, origin, method_asked, asked_headers, private is not None)
            return
        await self.app(scope, receive, self._sender(send, origin))

    async def preflight(
        self, send: Send, origin: str, method: str, asked_headers: str | None, private: bool
    ) -> None:
        """Answer a preflight request."""
        headers = list(self.preflight_headers)
        failures = []
        if self.allowed(origin):
            if self.explicit:
                headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
        else:
            failures.append("origin")
        if method not in self.allow_methods:
            failures.append("method")
        if self.all_headers and asked_headers is not None:
            headers = [h for h in headers if h[0] != b"access-control-allow-headers"]
            headers.append((b"access-control-allow-headers", asked_headers.encode("latin-1")))
        elif asked_headers is not None:
            for header in asked_headers.lower().split(","):
                if header.strip() not in self.allow_headers:
                    failures.append("headers")
                    break
        if private:  # private network access is never allowed from a service's config
            failures.append("private-network")
        body = b"Disallowed CORS " + ", ".join(failures).encode() if failures else b"OK"
        headers += [(b"content-length", b"%d" % len(body)), (b"content-type", _TEXT)]
        await send({"type": "http.response.start", "status": 400 if failures else 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _sender(self, send: Send, origin: str | None) -> Callable[[Message], Awaitable[None]]:
        """``send`` with the CORS headers added to the response head."""
        named = origin is not None and (
            (self.all_origins and self.credentials) or (not self.all_origins and self.allowed(origin))
        )

        def sender(message: Message) -> Awaitable[None]:
            if message["type"] != "http.response.start":
                return send(message)
            drop = {b"vary"}
            add: list[tuple[bytes, bytes]] = []
            if origin is not None:
                drop |= self.simple_names
                add += self.simple
            if named:  # the origin itself, in place of any "*"
                assert origin is not None
                drop.add(b"access-control-allow-origin")
                add = [h for h in add if h[0] != b"access-control-allow-origin"]
                add.append((b"access-control-allow-origin", origin.encode("latin-1")))
            vary = []
            kept = []
            for name, value in message.get("headers", ()):
                low = bytes(name).lower()
                if low == b"vary":
                    vary.append(bytes(value))
                elif low not in drop:
                    kept.append((name, value))
            vary.append(b"Origin")
            kept += add
            kept.append((b"vary", b", ".join(vary)))
            return send({**message, "headers": kept})

        return sender
