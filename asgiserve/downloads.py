"""File inputs given as URLs: the server downloads them with the client's own HTTP/1.1 core.

An api taking a ``Path`` accepts an http(s) URL string instead of an upload. Fetching a URL chosen by
the caller from inside the server is the classic server-side request forgery hole, so every address the
host name resolves to must be public unless the operator allowed private URLs (``public_address``: no
private, loopback, link-local, shared, reserved or multicast address, nor an IPv6 address that embeds
such an IPv4 one); the connection then goes to the checked address itself, so a second DNS answer
cannot swap it. Redirects are followed (a few) and checked the same way; the body size is capped.

A malformed URL (bad port, bad host name) is the caller's mistake, a 400; unsafe characters in the path
are percent-encoded rather than refused. The body is written to disk off the event loop, and the
connection stops reading while a write is pending past its high-water mark, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import pathlib
import re
import shutil
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import msgspec

from .client.aiopool import WANT_CHUNK, WANT_HEADERS, AsyncConnection
from .client.endpoints import disposition_filename
from .client.wire import Response, TransportError, encode_head
from .codec import APICodec, FileURL
from .errors import BadRequest

S = TypeVar("S", bound=msgspec.Struct)

__all__ = ["MAX_DOWNLOAD_BYTES", "download", "fetch_into_temp", "fetch_urls", "public_address"]

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
_FLUSH = 1 << 20  # buffered body bytes written to disk by one executor call
_INLINE = 64 * 1024  # a last piece this small is written on the loop (cheaper than a thread hop)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")
# Characters a request target may carry as they are (RFC 3986 pchar and "/", "?" in the query; "%"
# keeps escapes the caller already wrote); everything else, spaces and non-ASCII included, is encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Prefixes whose last 32 bits are an IPv4 address a translator or relay would reach: NAT64's well-known
# prefix (RFC 6052), IPv4-compatible (deprecated, RFC 4291 2.5.5.1) and SIIT's IPv4-translated (RFC 2765).
_EMBEDS_IPV4 = tuple(map(ipaddress.IPv6Network, ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96")))
# Never public: NAT64 local-use (RFC 8215, mapping chosen by the local network), site-local (RFC 3879).
_NOT_PUBLIC = tuple(map(ipaddress.IPv6Network, ("64:ff9b:1::/48", "fec0::/10")))


def public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is globally reachable unicast and so is any IPv4 address embedded in it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return public_address(ip.ipv4_mapped)
        if ip.teredo is not None or any(ip in net for net in _NOT_PUBLIC):
            return False  # Teredo tunnels to whatever host sits behind the embedded NAT address
        embedded = ip.sixtofour
        if embedded is None and any(ip in net for net in _EMBEDS_IPV4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not public_address(embedded):
            return False
    return ip.is_global and not ip.is_multicast


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # loads the CA store once, at the first https download


async def _resolve(host: str, port: int, allow_private: bool) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BadRequest(f"cannot resolve {host!r}: {exc}") from None
    addrs = [str(info[4][0]) for info in infos]
    if not allow_private:
        for addr in addrs:
            if not public_address(ipaddress.ip_address(addr.split("%")[0])):
                raise BadRequest(
                    f"refusing to download from {host!r}: it resolves to the non-public address {addr}"
                )
    return addrs[0]


def _parse(url: str) -> tuple[bool, str, int, bytes]:
    """``(tls, host to resolve, port, request head)`` of ``url``; ``BadRequest`` naming its problem."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unclosed "[" of an IPv6 host, among others
        raise BadRequest(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"expected an http(s) URL, got {url!r}")
    try:
        explicit_port = parts.port
    except ValueError:
        raise BadRequest(f"invalid port in URL {url!r}") from None
    tls = parts.scheme == "https"
    hostname = parts.hostname
    if ":" in hostname:  # an IPv6 literal
        host, authority = hostname, f"[{hostname}]"
    else:
        try:
            host = authority = hostname.encode("idna").decode("ascii")
        except UnicodeError as exc:  # an empty label or one over 63 characters, say
            raise BadRequest(f"invalid host name {hostname!r} in URL {url!r}: {exc}") from None
    if explicit_port is not None:
        authority += f":{explicit_port}"
    target = urllib.parse.quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
    headers = [("User-Agent", "asgiserve-fetch"), ("Connection", "close"), ("Accept", "*/*")]
    try:
        head = encode_head("GET", target, authority, headers) + b"\r\n"
    except ValueError as exc:
        raise BadRequest(f"invalid URL {url!r}: {exc}") from None
    return tls, host, explicit_port or (443 if tls else 80), head


async def _get(url: str, dest: pathlib.Path, allow_private: bool) -> tuple[int, dict[str, str]]:
    tls, host, port, head = _parse(url)
    addr = await _resolve(host, port, allow_private)
    loop = asyncio.get_running_loop()
    try:
        transport, conn = await loop.create_connection(
            AsyncConnection,
            addr,
            port,
            ssl=_tls_context() if tls else None,
            server_hostname=host if tls else None,
        )
    except OSError as exc:
        raise BadRequest(f"cannot download {url}: {exc}") from None
    resp = conn.resp = Response()
    conn.stream = True  # pause reading while the disk write of earlier chunks is pending
    try:
        transport.write(head)
        await conn.wait(resp, WANT_HEADERS, None)
        if resp.status != 200:
            return resp.status, resp.headers
        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_DOWNLOAD_BYTES:
            raise BadRequest(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
        await _save_body(conn, resp, dest, url)
        return 200, resp.headers
    except TransportError as exc:
        raise BadRequest(f"downloading {url} failed: {exc}") from None
    finally:
        conn.close()


async def _save_body(conn: AsyncConnection, resp: Response, dest: pathlib.Path, url: str) -> None:
    loop = asyncio.get_running_loop()
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    with dest.open("wb") as fh:
        while True:
            body = resp.take_body()
            if body:
                size += len(body)
                if size > MAX_DOWNLOAD_BYTES:
                    raise BadRequest(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                pending.append(body)
                pending_size += len(body)
            if pending_size >= _FLUSH or (resp.complete and pending_size > _INLINE):
                data = b"".join(pending)
                pending.clear()
                pending_size = 0
                await loop.run_in_executor(None, fh.write, data)
            if resp.complete:
                break
            await conn.wait(resp, WANT_CHUNK, None)
        if pending:
            fh.write(b"".join(pending))


def _file_name(url: str, headers: dict[str, str]) -> str:
    name = disposition_filename(headers.get("content-disposition", ""))
    if not name:
        name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = _SAFE_NAME.sub("_", pathlib.PurePosixPath(name.replace("\\", "/")).name).strip(". ")
    return name[:200] or "download"


async def download(url: str, folder: pathlib.Path, *, allow_private: bool = False) -> pathlib.Path:
    """Download ``url`` into a new file under ``folder`` and return its path."""
    target = folder / f"download-{len(list(folder.iterdir()))}"
    target.mkdir()
    tmp = target / ".partial"
    for _ in range(MAX_REDIRECTS + 1):
        status, headers = await _get(url, tmp, allow_private)
        if status in (301, 302, 303, 307, 308) and headers.get("location"):
            url = urllib.parse.urljoin(url, headers["location"])
            continue
        if status != 200:
            raise BadRequest(f"downloading {url} failed: HTTP {status}")
        path = target / _file_name(url, headers)
        tmp.rename(path)
        return path
    raise BadRequest(f"downloading {url} failed: more than {MAX_REDIRECTS} redirects")


async def fetch_urls(codec: APICodec, obj: S, folder: pathlib.Path, allow_private: bool) -> S:
    """Replace every URL given for a ``Path`` parameter of ``obj`` with the downloaded file."""
    allow = allow_private
    for name in codec.path_params:
        value = getattr(obj, name)
        if isinstance(value, FileURL):
            setattr(obj, name, await download(value.url, folder, allow_private=allow))
        elif isinstance(value, list) and any(isinstance(v, FileURL) for v in value):
            value[:] = [
                await download(v.url, folder, allow_private=allow) if isinstance(v, FileURL) else v
                for v in value
            ]
    return obj


async def fetch_into_temp(
    codec: APICodec, obj: S, allow_private: bool
) -> tuple[S, Callable[[], None] | None]:
    """``fetch_urls`` into a new temporary folder, and the cleanup removing it (None: no URL was given)."""
    if not any(isinstance(getattr(obj, n), (FileURL, list)) for n in codec.path_params):
        return obj, None
    folder = pathlib.Path(tempfile.mkdtemp(prefix="asgiserve-download-"))
    try:
        return await fetch_urls(codec, obj, folder, allow_private), lambda: shutil.rmtree(
            folder, ignore_errors=True
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
