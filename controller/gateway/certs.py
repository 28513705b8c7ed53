"""A small certificate authority: ECDSA P-256 keys, a self-signed CA, server and client leaves, PEM I/O.

The controller uses it for the mutual TLS between a Gateway's Envoy and its ext_proc
(``controller.gateway.extproc_tls``); the tests' real parts use it for the API server and TLS backends
(``tests/realparts/tinyca.py``).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write_pair(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate and the key (mode 0600) as PEM."""
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> KeyPair:
        """Read a pair back from PEM; ValueError when either is not one (or the key is not ECDSA)."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an ECDSA private key")
        return cls(cert, key)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name(attrs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # ECDSA keys sign; only a CA signs certificates and CRLs.
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    """What every certificate here has: ``subject`` and ``issuer``, ``key``'s public key, a random serial,
    validity from 5 minutes ago for ``validity``, and the basic constraints and key usage of a CA (``ca``) or
    of a leaf."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
    )


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates, each valid for ``validity``."""

    def __init__(self, pair: KeyPair, *, validity: datetime.timedelta) -> None:
        self.pair = pair
        self.validity = validity

    @classmethod
    def new(
        cls, common_name: str, *, validity: datetime.timedelta, organizations: tuple[str, ...] = ()
    ) -> CertificateAuthority:
        """A new CA (its own certificate valid for ``validity`` too)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name, organizations)
        cert = (
            _builder(name, name, key, ca=True, validity=validity)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(KeyPair(cert, key), validity=validity)

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        """A leaf certificate signed by this CA, for server and/or client authentication."""
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        builder = _builder(
            _name(common_name, organizations), self.pair.cert.subject, key, ca=False, validity=self.validity
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.pair.key.public_key()), critical=False
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return KeyPair(builder.sign(self.pair.key, hashes.SHA256()), key)
