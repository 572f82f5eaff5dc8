"""File inputs given as URLs: the server downloads them with the client's own HTTP/1.1 core.

An api taking a ``Path`` accepts an http(s) URL string instead of an upload. Fetching a URL chosen by
the caller from inside the server is the classic server-side request forgery hole, so every address the
host name resolves to must be public (``ipaddress.is_global``: no private, loopback, link-local, shared,
reserved or multicast address, IPv4-mapped IPv6 included) unless the operator allowed private URLs; the
connection then goes to the checked address itself, so a second DNS answer cannot swap it. Redirects
are followed (a few) and checked the same way; the body size is capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import pathlib
import re
import socket
import ssl
import urllib.parse
from typing import TYPE_CHECKING, Any

from .client.aiopool import WANT_CHUNK, WANT_HEADERS, AsyncConnection
from .client.endpoints import _FILENAME_RE
from .client.wire import Response, TransportError, encode_head
from .codec import FileURL
from .errors import BadRequest

if TYPE_CHECKING:
    from .handlers import APIHandler

__all__ = ["MAX_DOWNLOAD_BYTES", "download", "fetch_urls"]

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int, allow_private: bool) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BadRequest(f"cannot resolve {host!r}: {exc}") from None
    addrs = [str(info[4][0]) for info in infos]
    if not allow_private:
        for addr in addrs:
            if not _public(ipaddress.ip_address(addr.split("%")[0])):
                raise BadRequest(
                    f"refusing to download from {host!r}: it resolves to the non-public address {addr}"
                )
    return addrs[0]


async def _get(url: str, dest: pathlib.Path, allow_private: bool) -> tuple[int, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"expected an http(s) URL, got {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    addr = await _resolve(parts.hostname, port, allow_private)
    host = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = encode_head(
        "GET", target, host, [("User-Agent", "asgiserve-fetch"), ("Connection", "close"), ("Accept", "*/*")]
    )
    loop = asyncio.get_running_loop()
    try:
        transport, conn = await loop.create_connection(
            AsyncConnection,
            addr,
            port,
            ssl=ssl.create_default_context() if tls else None,
            server_hostname=parts.hostname if tls else None,
        )
    except OSError as exc:
        raise BadRequest(f"cannot download {url}: {exc}") from None
    resp = conn.resp = Response()
    try:
        transport.write(head + b"\r\n")
        await conn.wait(resp, WANT_HEADERS, None)
        if resp.status != 200:
            return resp.status, resp.headers
        size = 0
        with dest.open("wb") as fh:
            while True:
                body = resp.take_body()
                size += len(body)
                if size > MAX_DOWNLOAD_BYTES:
                    raise BadRequest(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                fh.write(body)
                if resp.complete:
                    break
                await conn.wait(resp, WANT_CHUNK, None)
        return 200, resp.headers
    except TransportError as exc:
        raise BadRequest(f"downloading {url} failed: {exc}") from None
    finally:
        conn.close()


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
        m = _FILENAME_RE.search(headers.get("content-disposition", ""))
        name = m.group(1) if m else urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        name = _SAFE_NAME.sub("_", pathlib.PurePosixPath(name.replace("\\", "/")).name).strip(". ")
        path = target / (name or "download")
        tmp.rename(path)
        return path
    raise BadRequest(f"downloading {url} failed: more than {MAX_REDIRECTS} redirects")


async def fetch_urls(handler: APIHandler, obj: Any, folder: pathlib.Path) -> Any:
    """Replace every URL given for a ``Path`` parameter of ``obj`` with the downloaded file."""
    allow = handler.app.allow_private_urls
    for name in handler.codec.path_params:
        value = getattr(obj, name)
        if isinstance(value, FileURL):
            setattr(obj, name, await download(value.url, folder, allow_private=allow))
        elif isinstance(value, list) and any(isinstance(v, FileURL) for v in value):
            value[:] = [
                await download(v.url, folder, allow_private=allow) if isinstance(v, FileURL) else v
                for v in value
            ]
    return obj
