"""TLS settings and their errors: the keyfile password, ``ASGISERVE_SSL_*`` variables, ciphers and
protocol versions, the service's ``ssl={...}`` (and flags winning over it), a clear exit for every bad
setting, several workers, the handshake deadline, a drain with idle TLS connections, and how the clients
verify the server (system trust store, a CA path, ``verify=False``)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

import asgiserve
from asgiserve.errors import TLSError

from .conftest import ROOT, ServerProc
from .conftest import start as start_server
from .test_tls import LIVE, SERVICE, _no_leftover_servers, https_url, start_https, stop_clean, wait_https  # noqa: F401
from .tls_certs import KEY_PASSWORD, Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def start(runner: str, target: str, tmp: Path, *extra: str, **kw: object) -> ServerProc:
    """``conftest.start``, killed after the test if it fails before stopping it."""
    server = start_server(runner, target, tmp, *extra, **kw)  # type: ignore[arg-type]
    LIVE.append(server)
    return server


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """``python -m asgiserve ...`` expected to exit by itself (a bad setting), stdin closed."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "asgiserve", *args, "--port", "0"],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_encrypted_key_with_its_password(tmp_path: Path, certs: Certs) -> None:
    server = start(
        "asgiserve", SERVICE, tmp_path, "--ssl-certfile", str(certs.server_cert),
        "--ssl-keyfile", str(certs.server_key_encrypted), "--ssl-keyfile-password", KEY_PASSWORD, ready=False,
    )  # fmt: skip
    wait_https(server, certs.client_context())
    with asgiserve.SyncHTTPClient(https_url(server), verify=str(certs.ca)) as client:
        assert client.echo(text="locked") == "locked"
    stop_clean(server)


@pytest.mark.parametrize("password", [None, "wrong"])
def test_encrypted_key_without_the_right_password_exits(certs: Certs, password: str | None) -> None:
    flags = ["--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key_encrypted)]
    flags += ["--ssl-keyfile-password", password] if password else []
    t0 = time.monotonic()
    out = run_cli(SERVICE, *flags)  # no prompt for the password: it would wait forever
    assert out.returncode == 1, out.stderr
    assert time.monotonic() - t0 < 15
    assert "TLS: cannot load the certificate" in out.stderr and "--ssl-keyfile-password" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_environment_variables(tmp_path: Path, certs: Certs) -> None:
    env = {
        "ASGISERVE_SSL_CERTFILE": str(certs.server_cert),
        "ASGISERVE_SSL_KEYFILE": str(certs.server_key_encrypted),
        "ASGISERVE_SSL_KEYFILE_PASSWORD": KEY_PASSWORD,
        "ASGISERVE_SSL_CERT_REQS": "2",
        "ASGISERVE_SSL_CA_CERTS": str(certs.ca),
    }
    server = start("asgiserve-h11", SERVICE, tmp_path, env=env, ready=False)
    wait_https(server, certs.client_context(cert=True))
    with asgiserve.SyncHTTPClient(https_url(server), verify=certs.client_context(cert=True)) as client:
        assert client.echo(text="env") == "env"
    with pytest.raises(asgiserve.ServiceUnavailable):  # ASGISERVE_SSL_CERT_REQS took effect
        asgiserve.SyncHTTPClient(https_url(server), verify=certs.client_context(), server_ready_timeout=0.3)
    stop_clean(server)


def test_ciphers_and_protocol_version(tmp_path: Path, certs: Certs) -> None:
    cipher = "ECDHE-ECDSA-AES128-GCM-SHA256"
    server = start_https("asgiserve", tmp_path, certs, "--ssl-ciphers", cipher, "--ssl-version", "17")
    ctx = certs.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are not what --ssl-ciphers chooses
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.cipher()[0] == cipher, tls.cipher()  # type: ignore[index]
            assert tls.selected_alpn_protocol() is None
    ctx = certs.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.3"
            assert tls.selected_alpn_protocol() == "http/1.1"  # never h2: only HTTP/1.1 is spoken here
    stop_clean(server)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ssl-ciphers", "NO-SUCH-CIPHER"], "--ssl-ciphers 'NO-SUCH-CIPHER' selects no cipher"),
        (["--ssl-version", "99"], "--ssl-version 99 is not a protocol"),
        (["--ssl-cert-reqs", "7", "--ssl-ca-certs", "{ca}"], "--ssl-cert-reqs must be 0 (none), 1 (optional) or 2"),
        (["--ssl-cert-reqs", "2"], "give --ssl-ca-certs"),
        (["--ssl-ca-certs", "{key}"], "not a PEM bundle"),
        (["--ssl-ca-certs", "/no/such/ca.pem"], "--ssl-ca-certs /no/such/ca.pem: no such file"),
    ],
)
def test_bad_settings_exit_with_a_clear_message(certs: Certs, flags: list[str], message: str) -> None:
    flags = [f.format(ca=certs.ca, key=certs.server_key) for f in flags]
    out = run_cli(SERVICE, "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key), *flags)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_missing_files_exit_with_a_clear_message(certs: Certs) -> None:
    out = run_cli(SERVICE, "--ssl-certfile", "/no/cert.pem")
    assert out.returncode == 1 and "TLS: --ssl-certfile /no/cert.pem: no such file" in out.stderr, out.stderr
    out = run_cli(SERVICE, "--ssl-keyfile", str(certs.server_key))
    assert out.returncode == 1 and "--ssl-keyfile needs --ssl-certfile" in out.stderr, out.stderr
    out = run_cli(SERVICE, "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.client_key))
    assert out.returncode == 1 and "is the key the certificate's" in out.stderr, out.stderr


def test_service_ssl_config(tmp_path: Path, certs: Certs) -> None:
    env = {"TLS_TEST_CERT": str(certs.server_cert), "TLS_TEST_KEY": str(certs.server_key)}
    server = start("asgiserve", "tests.apps.tls_svc:TLSConfigured", tmp_path, env=env, ready=False)
    wait_https(server, certs.client_context())  # no flag: the service's ssl={...} made it https
    with asgiserve.SyncHTTPClient(https_url(server), verify=str(certs.ca)) as client:
        assert client.echo(text="configured") == "configured"
    stop_clean(server)
    assert "serving TLSConfigured on https://127.0.0.1" in server.output()
    # A flag wins over the service's key: the service names a certificate that is not there.
    env = {"TLS_TEST_CERT": "/no/such/cert.pem", "TLS_TEST_KEY": "/no/such/key.pem"}
    out = run_cli("tests.apps.tls_svc:TLSConfigured", env=env)
    assert out.returncode == 1 and "--ssl-certfile /no/such/cert.pem: no such file" in out.stderr, out.stderr
    server = start_https("asgiserve-h11", tmp_path, certs, target="tests.apps.tls_svc:TLSConfigured", env=env)
    stop_clean(server)
    # BentoML's rule: enabled without a certificate is an error.
    out = run_cli("tests.apps.tls_svc:TLSEnabledNoCert")
    assert out.returncode == 1 and "ssl is enabled but no certificate is given" in out.stderr, out.stderr


def test_service_ssl_config_is_checked() -> None:
    from asgiserve.server.config import Config
    from asgiserve.server.tls import apply_service_ssl

    with pytest.raises(ValueError, match=r"ssl got unknown key\(s\) \['cert'\]"):
        apply_service_ssl(Config(), {"cert": "x.pem"})
    with pytest.raises(ValueError, match=r"ssl\.cert_reqs must be an integer"):
        apply_service_ssl(Config(), {"certfile": "x.pem", "cert_reqs": "2"})
    config = Config(ssl_ciphers="ECDHE+AESGCM")
    apply_service_ssl(config, {"certfile": Path("c.pem"), "ciphers": "ALL", "version": 17, "cert_reqs": 0})
    assert (config.ssl_certfile, config.ssl_ciphers, config.ssl_version, config.ssl_cert_reqs) == (
        "c.pem", "ECDHE+AESGCM", 17, 0,
    )  # fmt: skip


def test_workers_each_serve_https(tmp_path: Path, certs: Certs) -> None:
    server = start_https("asgiserve", tmp_path, certs, "--workers", "2")
    ctx = certs.client_context()
    for _ in range(12):  # fresh connections, spread over both workers by the kernel
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert tls.recv(4096).startswith(b"HTTP/1.1 200")
    stop_clean(server)


def test_silent_client_is_dropped_at_the_header_deadline(tmp_path: Path, certs: Certs) -> None:
    server = start_https("asgiserve", tmp_path, certs, "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=6) as raw:
        t0 = time.monotonic()
        assert raw.recv(100) == b""  # no ClientHello: the handshake deadline closes it
        assert 0.5 < time.monotonic() - t0 < 4
    stop_clean(server)


def test_drain_with_idle_tls_connections(tmp_path: Path, certs: Certs) -> None:
    server = start_https("asgiserve", tmp_path, certs)
    ctx = certs.client_context()
    idle = []
    for _ in range(3):  # kept alive after a request, then never read again (no close_notify answered)
        tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)), server_hostname="127.0.0.1")
        tls.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        idle.append(tls)
    t0 = time.monotonic()
    stop_clean(server)
    assert time.monotonic() - t0 < 8, "idle TLS connections held up the drain"
    for tls in idle:
        tls.close()


def test_client_verify_modes(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_https("asgiserve", tmp_path, certs)
    url = https_url(server)
    # The system trust store does not know our CA: refused at once, not after the readiness wait.
    t0 = time.monotonic()
    with pytest.raises(TLSError, match="CERTIFICATE_VERIFY_FAILED"):
        asgiserve.SyncHTTPClient(url, server_ready_timeout=20)
    assert time.monotonic() - t0 < 5

    async def call(**kw: object) -> object:
        async with asgiserve.AsyncHTTPClient(url, server_ready_timeout=20, **kw) as client:  # type: ignore[arg-type]
            return await client.echo(text="async")

    with pytest.raises(TLSError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(call())
    # Not checked at all; or the system trust store, when it holds our CA (SSL_CERT_FILE points there).
    with asgiserve.SyncHTTPClient(url, verify=False) as client:
        assert client.echo(text="unchecked") == "unchecked"
    assert asyncio.run(call(verify=False)) == "async"
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    with asgiserve.SyncHTTPClient(url) as client:
        assert client.echo(text="system") == "system"
    assert asyncio.run(call()) == "async"
    monkeypatch.delenv("SSL_CERT_FILE")
    # A CA directory, the hostname checked against the certificate, and a wrong CA path.
    ca_dir = tmp_path / "cadir"
    ca_dir.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(certs.ca)], capture_output=True, text=True, check=True
    ).stdout.strip()
    (ca_dir / f"{subject_hash}.0").write_bytes(certs.ca.read_bytes())
    with asgiserve.SyncHTTPClient(f"https://localhost:{server.port}", verify=ca_dir) as client:
        assert client.echo(text="by name") == "by name"
    with pytest.raises(ValueError, match="no such CA bundle"):
        asgiserve.SyncHTTPClient(url, verify="/no/such/ca.pem")
    # An http URL to the TLS port: the server closes; the client says so instead of hanging.
    with pytest.raises(asgiserve.ServiceUnavailable, match="ServerDisconnected"):
        asgiserve.SyncHTTPClient(f"http://127.0.0.1:{server.port}", server_ready_timeout=0.3)
    stop_clean(server)
