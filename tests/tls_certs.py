"""Certificates made at test time with the ``openssl`` binary: a CA, a server certificate it signed for
127.0.0.1 and localhost (also with an encrypted key), a client certificate it signed, and a client
certificate signed by another CA (which a server trusting only the first must refuse)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class Certs:
    """Paths of the PEM files one ``make_certs`` call wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    server_key_encrypted: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path

    def client_context(self, *, cert: bool = False, rogue: bool = False) -> ssl.SSLContext:
        """A client context trusting our CA, presenting the good (or the rogue) client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        elif rogue:
            ctx.load_cert_chain(self.rogue_cert, self.rogue_key)
        return ctx


def _openssl(*args: str | Path) -> None:
    tool = shutil.which("openssl")
    assert tool, "the openssl binary is needed to make test certificates (apt-get install openssl)"
    subprocess.run([tool, *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert, extfile = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}")
    extfile.write_text(ext)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", extfile,
    )  # fmt: skip
    return cert, key


def make_certs(d: Path) -> Certs:
    """Write a fresh set of certificates under ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    ca = _ca(d, "test-ca")
    rogue_ca = _ca(d, "rogue-ca")
    server = _leaf(
        d, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    client = _leaf(d, "client", ca, "extendedKeyUsage=clientAuth\n")
    rogue = _leaf(d, "rogue", rogue_ca, "extendedKeyUsage=clientAuth\n")
    encrypted = d / "server-encrypted.key"
    _openssl("pkey", "-in", server[1], "-aes256", "-passout", f"pass:{KEY_PASSWORD}", "-out", encrypted)
    return Certs(ca[0], server[0], server[1], encrypted, client[0], client[1], rogue[0], rogue[1])
