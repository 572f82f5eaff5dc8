"""Raw-socket HTTP helpers for the protocol tests: send exact bytes, read and split what comes back."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    """One parsed HTTP response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = True


@dataclass
class Exchange:
    """Everything a connection received, and whether the server closed it."""

    raw: bytes
    closed: bool
    responses: list[Response]

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses if r.status >= 200]


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_all(s: socket.socket, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Read until the server closes (True) or ``timeout`` of silence (False)."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            data = s.recv(65536)
        except TimeoutError:
            return out, False
        except ConnectionResetError:
            return out, True
        if not data:
            return out, True
        out += data


def exchange(port: int, data: bytes, timeout: float = 3.0, head_request: bool = False) -> Exchange:
    """Send ``data`` on a fresh connection and collect the reply until close or silence."""
    with connect(port) as s:
        s.sendall(data)
        raw, closed = read_all(s, timeout)
    return Exchange(raw, closed, parse_responses(raw, head_request))


def parse_responses(raw: bytes, head_request: bool = False) -> list[Response]:
    """Split a byte stream into responses (Content-Length, chunked or close-delimited bodies)."""
    out: list[Response] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            raise AssertionError(f"incomplete response head: {raw[pos:]!r}")
        lines = raw[pos:end].split(b"\r\n")
        version, status, *_ = lines[0].split(b" ", 2)
        assert version == b"HTTP/1.1", lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.decode().lower()
            assert key not in headers or key == "set-cookie", f"repeated header {key}"
            headers[key] = value.strip().decode("latin-1")
        resp = Response(int(status), headers)
        pos = end + 4
        code = resp.status
        if code < 200 or code in (204, 304) or head_request:
            pass
        elif "content-length" in headers:
            n = int(headers["content-length"])
            resp.body = raw[pos : pos + n]
            resp.complete = len(resp.body) == n
            pos += n
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            resp.complete = False
            while True:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(raw[pos:eol], 16)
                pos = eol + 2
                if size == 0:
                    resp.complete = raw[pos : pos + 2] == b"\r\n"
                    pos += 2
                    break
                body += raw[pos : pos + size]
                pos += size + 2
            resp.body = body
        else:
            resp.body = raw[pos:]
            pos = len(raw)
        out.append(resp)
    return out


def get(port: int, path: str = "/events") -> Response:
    """One GET on a fresh connection, closing it after."""
    ex = exchange(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    assert ex.responses, ex.raw
    return ex.responses[0]


def wait_listening(port: int, proc: object, timeout: float = 20.0, path: str = "/events") -> None:
    """Wait until the server answers ``path`` with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError("server exited early")
        try:
            if get(port, path).status == 200:
                return
        except (OSError, AssertionError):
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not come up")
