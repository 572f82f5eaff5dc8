"""URL downloads' guards without a network: which addresses count as public, and how URLs are parsed."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from asgiserve.downloads import _parse, _resolve, public_address
from asgiserve.errors import InvalidArgument


@pytest.mark.parametrize(
    "addr, public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        # NAT64 well-known prefix: judged by the embedded IPv4 address; local-use prefix: never.
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::808:808", False),
        # 6to4: judged by the embedded IPv4 address.
        ("2002:7f00:1::1", False),
        ("2002:a00:1::1", False),
        ("2002:a9fe:a9fe::1", False),
        ("2002:808:808::1", True),
        # Teredo: never.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("2001:0:808:808:0:0:f7f7:f7f7", False),
        # IPv4-compatible (deprecated) and SIIT IPv4-translated: judged by the embedded address.
        ("::127.0.0.1", False),
        ("::10.0.0.1", False),
        ("::ffff:0:7f00:1", False),
        ("::ffff:0:a9fe:a9fe", False),
        # Deprecated site-local.
        ("fec0::1", False),
        ("feff::1", False),
    ],
)
def test_public_address(addr, public):
    assert public_address(ipaddress.ip_address(addr)) is public


@pytest.mark.parametrize("addr", ["64:ff9b::7f00:1", "2002:7f00:1::1", "::127.0.0.1", "fec0::1"])
def test_embedded_private_addresses_are_refused_unless_allowed(addr):
    with pytest.raises(InvalidArgument, match="non-public address"):
        asyncio.run(_resolve(addr, 80, False))
    assert asyncio.run(_resolve(addr, 80, True)) == addr


@pytest.mark.parametrize(
    "url, tls, host, port, head",
    [
        ("http://example.com/a b", False, "example.com", 80, "GET /a%20b HTTP/1.1\r\nHost: example.com\r\n"),
        (
            "https://EXAMPLE.com:8443",
            True,
            "example.com",
            8443,
            "GET / HTTP/1.1\r\nHost: example.com:8443\r\n",
        ),
        (
            "http://[::1]:81/x?q=a b&r=%41",
            False,
            "::1",
            81,
            "GET /x?q=a%20b&r=%41 HTTP/1.1\r\nHost: [::1]:81\r\n",
        ),
        (
            "http://b\u00fccher.example/caf\u00e9",
            False,
            "xn--bcher-kva.example",
            80,
            "GET /caf%C3%A9 HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n",
        ),
        (
            'http://u:p@h.example/"<>',
            False,
            "h.example",
            80,
            "GET /%22%3C%3E HTTP/1.1\r\nHost: h.example\r\n",
        ),
    ],
)
def test_parse_encodes_the_target_and_host(url, tls, host, port, head):
    got_tls, got_host, got_port, got_head = _parse(url)
    assert (got_tls, got_host, got_port) == (tls, host, port)
    assert got_head.decode("ascii").startswith(head)


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://example.com:99999/x", "invalid port"),
        ("http://example.com:x/", "invalid port"),
        ("http://[::1/x", "invalid URL"),
        ("http://" + "a" * 64 + ".com/", "invalid host name"),
        ("ftp://example.com/", "expected an http\\(s\\) URL"),
        ("http:///x", "expected an http\\(s\\) URL"),
    ],
)
def test_parse_refuses_malformed_urls(url, message):
    with pytest.raises(InvalidArgument, match=message):
        _parse(url)
