"""Mutual TLS between ``aigw run``'s Envoy and its ext_proc, from a throwaway CA made for the run.

The ext_proc injects backend credentials into requests; over plain gRPC any local process could connect to its
loopback port and read them. ``write_loopback_mtls(directory)`` creates a CA and, signed by it, a server
certificate for ``127.0.0.1`` (the ext_proc) and a client certificate (Envoy), writes them as PEM files
readable by the current user only (directory 0700, files 0600), and returns their paths. The CA's key is never
written: nothing else can ever get a certificate the ext_proc accepts. Certificates are ECDSA P-256, valid for
a year (a run is restarted long before).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True, kw_only=True)
class LoopbackMTLS:
    """PEM files: the CA certificate both sides trust, the ext_proc's pair, Envoy's pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    *,
    subject: str,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signing_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_loopback_mtls(directory: Path) -> LoopbackMTLS:
    """Make the CA and both pairs, write them under ``directory``; see the module docstring."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("aigw-run loopback CA")
    ca = _certificate(
        subject="aigw-run loopback CA",
        issuer=ca_name,
        public_key=ca_key.public_key(),
        signing_key=ca_key,
        ca=True,
    )
    files = LoopbackMTLS(
        ca=directory / "ca.crt",
        server_cert=directory / "extproc.crt",
        server_key=directory / "extproc.key",
        client_cert=directory / "envoy.crt",
        client_key=directory / "envoy.key",
    )
    _write(files.ca, ca.public_bytes(serialization.Encoding.PEM))
    for subject, usage, cert_path, key_path in (
        ("aigw-run ext_proc", ExtendedKeyUsageOID.SERVER_AUTH, files.server_cert, files.server_key),
        ("aigw-run envoy", ExtendedKeyUsageOID.CLIENT_AUTH, files.client_cert, files.client_key),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(
            subject=subject,
            issuer=ca_name,
            public_key=key.public_key(),
            signing_key=ca_key,
            ca=False,
            usage=usage,
        )
        _write(key_path, _key_pem(key))
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return files
