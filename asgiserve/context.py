"""BentoML's request ``Context``: what an api that takes a ``ctx`` (or ``context``) parameter is given.

``ctx.request`` reads the request (headers, cookies, query, url, method, client) lazily from the ASGI
scope; ``ctx.response`` collects the status, headers and cookies that go on the response once the api has
returned (or, for a stream, once its first item is out); ``ctx.state`` is one dict per worker process,
shared by every api; ``ctx.temp_dir`` is a directory made on first use and removed after the response.

Nothing here runs for an api that does not ask for a context: handlers decide that once, at build time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl, unquote

from .ctxfields import RAW_NAMES, Cookie, Metadata, NewMetadata

if TYPE_CHECKING:
    from .types import Answer, Headers, Scope

__all__ = [
    "URL",
    "WORKER_STATE",
    "Address",
    "Context",
    "Cookie",
    "DirectContext",
    "DirectRequest",
    "Metadata",
    "QueryParams",
    "RequestInfo",
    "ResponseContext",
    "direct_scope",
]

# The statuses an api may answer with (the server writes the reason phrase of each).
_FINAL = frozenset(int(s) for s in HTTPStatus if 200 <= s < 600)

# ``ctx.state``: one dict per worker process, shared by all apis (BentoML keeps one per service process).
WORKER_STATE: dict[str, object] = {}


class QueryParams(Mapping[str, str]):
    """The query string's parameters: ``params["k"]`` is the last value, ``getlist`` gives them all."""

    __slots__ = ("_items", "_last")

    def __init__(self, query: str) -> None:
        self._items = parse_qsl(query, keep_blank_values=True)
        self._last = dict(self._items)

    def __getitem__(self, key: str) -> str:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        return [v for k, v in self._items if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, in order."""
        return list(self._items)


class Address(NamedTuple):
    """The peer's address: ``host`` and ``port``."""

    host: str
    port: int


class URL(str):
    """The request's URL as a string, with its parts as attributes (``path``, ``query``, ...)."""

    scheme: str
    netloc: str
    path: str
    query: str

    @classmethod
    def of(cls, scope: Scope) -> URL:
        """The URL of the request described by ``scope``."""
        scheme = scope.get("scheme", "http")
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
                break
        if not host and scope.get("server"):
            server_host, port = scope["server"]
            default = 443 if scheme in ("https", "wss") else 80
            host = server_host if port == default else f"{server_host}:{port}"
        root: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root and not path.startswith(root):  # ASGI 3 paths carry the root path; older servers' do not
            path = root + path
        query = scope.get("query_string", b"").decode("latin-1")
        url = cls(f"{scheme}://{host}{path}" + (f"?{query}" if query else ""))
        url.scheme, url.netloc, url.path, url.query = scheme, host, path, query
        return url

    @property
    def hostname(self) -> str:
        """The host without the port."""
        host = self.netloc
        if host.startswith("["):
            return host[1 : host.find("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def port(self) -> int | None:
        """The port given in the URL, or None."""
        host = self.netloc.rsplit("]", 1)[-1]
        return int(host.rsplit(":", 1)[1]) if ":" in host else None


class RequestInfo:
    """``ctx.request``: the request an api is answering, read from its ASGI scope on first use."""

    __slots__ = ("_cookies", "_headers", "_query", "_url", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._headers: Metadata | None = None
        self._cookies: dict[str, str] | None = None
        self._query: QueryParams | None = None
        self._url: URL | None = None

    @property
    def headers(self) -> Metadata:
        """The request's header fields (case-insensitive)."""
        if self._headers is None:
            self._headers = Metadata(
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.scope["headers"]]
            )
        return self._headers

    @property
    def metadata(self) -> Metadata:
        """BentoML's other name for ``headers``."""
        return self.headers

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` header's pairs."""
        if self._cookies is None:
            jar: dict[str, str] = {}
            for header in self.headers.getlist("cookie"):
                for chunk in header.split(";"):
                    key, sep, value = chunk.partition("=")
                    key, value = (key.strip(), value.strip()) if sep else ("", chunk.strip())
                    if key or value:
                        jar[key] = unquote(value.strip('"'))
            self._cookies = jar
        return self._cookies

    @property
    def query_params(self) -> QueryParams:
        """The query string's parameters."""
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b"").decode("latin-1"))
        return self._query

    @property
    def url(self) -> URL:
        """The request's URL."""
        if self._url is None:
            self._url = URL.of(self.scope)
        return self._url

    @property
    def method(self) -> str:
        """The request method."""
        method: str = self.scope["method"]
        return method

    @property
    def client(self) -> Address | None:
        """The peer's address, when the server knows it."""
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None


class ResponseContext:
    """``ctx.response``: status, headers and cookies for the response of this call.

    ``headers`` is ``metadata`` under BentoML's other name: the same field, read as fast as any other.
    The cookie list is made on first use.
    """

    __slots__ = ("_cookies", "metadata", "status_code")

    if TYPE_CHECKING:
        headers: Metadata  # the ``metadata`` field (set below, once the class has it)

    def __init__(self) -> None:
        self.status_code = 200
        self.metadata: Metadata = Metadata()
        self._cookies: list[Cookie] | None = None

    @property
    def cookies(self) -> list[Cookie]:
        """The cookies to set on the response (``set_cookie`` adds one)."""
        cookies = self._cookies
        if cookies is None:
            cookies = self._cookies = []
        return cookies

    @cookies.setter
    def cookies(self, cookies: list[Cookie]) -> None:
        self._cookies = cookies

    def set_cookie(
        self,
        key: str,
        value: str,
        max_age: int | None = None,
        expires: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` to the response."""
        self.cookies.append(Cookie(key, value, max_age, expires, path, domain, secure, httponly, samesite))

    def apply(self, status: int, ctype: bytes, extra: Headers | None) -> tuple[int, bytes, Headers | None]:
        """The response's status, content type and extra headers once this context's settings are on it;
        ``ValueError`` for a status the server cannot send (the call then fails with a 500)."""
        status = self.status_code
        if status != 200 and status not in _FINAL:
            raise ValueError(
                f"ctx.response.status_code must be a final HTTP status (200-599), got {status!r}"
            )
        metadata = self.metadata
        if type(metadata) is not Metadata and not isinstance(metadata, Metadata):
            # A mapping set as a whole (``ctx.response.headers = {...}``): each field checked as an item set is.
            fields = Metadata()
            fields.update(metadata)
            self.metadata = metadata = fields
        items = metadata._items
        cookies = self._cookies
        if not items and not cookies:
            return status, ctype, extra
        out: Headers = list(extra) if extra else []
        for name, value in items:
            if name == "content-type":
                ctype = value.encode("latin-1")
            elif name != "content-length":  # the server frames the body itself
                out.append((name.encode("latin-1"), value.encode("latin-1")))
        if cookies:
            for cookie in cookies:
                out.append((b"set-cookie", cookie.header()))
        return status, ctype, out

    def on_answer(self, answer: Answer) -> Answer:
        """A successful call's whole ``answer`` (no extra header fields of its own) once this context's
        settings are on it: ``apply``, with its most common cases (nothing set, one header) taken here."""
        metadata = self.metadata
        if type(metadata) is NewMetadata and self.status_code == 200 and not self._cookies:
            items = metadata._items
            if len(items) == 1:
                name, value = items[0]
                raw = RAW_NAMES.get(name)  # None for the framing fields, which apply() handles
                if raw is not None:
                    return 200, answer[1], answer[2], [(raw, value.encode("latin-1"))]
            elif not items:
                return answer
        status, ctype, extra = self.apply(200, answer[1], answer[3])
        return status, ctype, answer[2], extra


# A second name for the slot: ``ctx.response.headers`` is an attribute read, not a property call.
ResponseContext.headers = ResponseContext.metadata  # type: ignore[misc]


class Context:
    """What an api's ``ctx`` parameter is given: ``request``, ``response``, ``state`` and ``temp_dir``.

    Each part is made on first use: an api that reads nothing of its context costs one small object.
    """

    __slots__ = ("_request", "_response", "_temp_dir")

    # ``ctx.state``: the worker's one dict.
    state: dict[str, object] = WORKER_STATE

    def __init__(self, scope: Scope | Callable[[], Scope]) -> None:
        # The request's ASGI scope, or what makes it; a ``RequestInfo`` once read.
        self._request: RequestInfo | Scope | Callable[[], Scope] | DirectRequest = scope
        self._response: ResponseContext | None = None
        self._temp_dir: str | None = None

    @property
    def request(self) -> RequestInfo:
        """The request being answered."""
        request = self._request
        if type(request) is not RequestInfo:
            if type(request) is tuple:
                scope = direct_scope(*request)
            else:
                scope = request if isinstance(request, dict) else request()  # type: ignore[operator]
            request = self._request = RequestInfo(scope)
        return request

    @property
    def response(self) -> ResponseContext:
        """What goes on the response: status, headers, cookies."""
        response = self._response
        if response is None:
            # ResponseContext() without its __init__'s call (nor Metadata's).
            response = self._response = _NewResponse()
            response.status_code = 200
            response.metadata = metadata = NewMetadata()
            metadata._items = ()
            response._cookies = None
        return response

    @response.setter
    def response(self, response: ResponseContext) -> None:
        self._response = response

    def finish(self, status: int, ctype: bytes, extra: Headers | None) -> tuple[int, bytes, Headers | None]:
        """The response's status, content type and extra headers with this context's settings on it, for a
        successful call (``ResponseContext.apply``)."""
        response = self._response
        if response is None:
            return status, ctype, extra
        return response.apply(status, ctype, extra)

    @property
    def temp_dir(self) -> str:
        """A directory of this request's own, removed once the response is sent."""
        if self._temp_dir is None:
            import tempfile

            self._temp_dir = tempfile.mkdtemp(prefix="asgiserve-request-")
        return self._temp_dir

    def close(self) -> None:
        """Remove ``temp_dir`` (when it was made)."""
        if self._temp_dir is not None:
            import shutil

            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


# What a direct call's context keeps of its request: route, header fields, target, peer.
DirectRequest = tuple[str, "Headers", bytes, "tuple[str, int] | None"]


def direct_scope(route: str, headers: Headers, target: bytes, client: tuple[str, int] | None) -> Scope:
    """The part of an ASGI scope a ``Context`` reads, for a call the server made directly."""
    return {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "query_string": target.partition(b"?")[2],
        "headers": headers,
        "client": client,
    }


class _NewResponse(ResponseContext):
    """A ``ResponseContext`` made without ``__init__``'s call: ``Context.response`` sets its fields."""

    __slots__ = ()
    __init__ = object.__init__


class DirectContext(Context):
    """The ``Context`` of a call the server made directly, made without ``__init__``'s call (the hot path):
    its maker sets ``_request`` to a ``DirectRequest``, ``_response`` and ``_temp_dir`` to None."""

    __slots__ = ()
    __init__ = object.__init__
