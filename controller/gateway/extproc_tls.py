"""The mutual TLS material between a Gateway's Envoy and its ext_proc (``--extproc-mtls``).

One CA per Gateway signs the ext_proc's server certificate (named after its Service) and Envoy's client
certificate. The ext_proc accepts only clients with a certificate of that CA, so no other pod can read the
credentials it injects; Envoy Gateway presents the client certificate and checks the server's against the CA.

The material lives in the Secrets the controller writes (``controller.translate`` emits them from the
snapshot's ``extproc_tls``); this module, at the edge (it draws random keys), keeps what is there while it is
complete and valid beyond ``RENEW_BEFORE``, and issues new certificates otherwise (keeping the CA while it
lasts, so a renewal never breaks the running pair).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from controller.gateway.certs import CertificateAuthority, KeyPair

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key", "client.crt", "client.key")
"""The material's keys (PEM text): the CA, the ext_proc's server pair, Envoy's client pair."""


def _pair(material: Mapping[str, str], cert: str, key: str) -> KeyPair | None:
    try:
        return KeyPair.from_pem(material[cert].encode(), material[key].encode())
    except (KeyError, ValueError):
        return None


def _lasts(pair: KeyPair, now: datetime.datetime) -> bool:
    return pair.cert.not_valid_after_utc - now > RENEW_BEFORE


def _names(pair: KeyPair) -> set[str]:
    try:
        sans = pair.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName))


def _signed_by(pair: KeyPair, ca: KeyPair) -> bool:
    try:
        pair.cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure_material(
    current: Mapping[str, str], *, dns_names: tuple[str, ...], now: datetime.datetime | None = None
) -> dict[str, str]:
    """``current`` when it holds every key of ``KEYS``, readable, the leaves signed by its CA, the server
    certificate naming exactly ``dns_names``, and everything valid for longer than ``RENEW_BEFORE``; else new
    leaves (from the current CA if it still lasts, else from a new one)."""
    now = now or datetime.datetime.now(datetime.UTC)
    ca_pair = _pair(current, "ca.crt", "ca.key")
    server = _pair(current, "tls.crt", "tls.key")
    client = _pair(current, "client.crt", "client.key")
    if (
        ca_pair is not None
        and server is not None
        and client is not None
        and all(_lasts(p, now) for p in (ca_pair, server, client))
        and _signed_by(server, ca_pair)
        and _signed_by(client, ca_pair)
        and _names(server) == set(dns_names)
    ):
        return {k: current[k] for k in KEYS}
    if ca_pair is None or not _lasts(ca_pair, now):
        ca = CertificateAuthority.new("ai-gateway ext_proc CA", validity=CA_VALIDITY)
    else:
        ca = CertificateAuthority(ca_pair, validity=LEAF_VALIDITY)
    leaves = CertificateAuthority(ca.pair, validity=LEAF_VALIDITY)
    server = leaves.issue("ai-gateway ext_proc", dns_names=dns_names, server=True)  # CN: 64 chars at most
    client = leaves.issue("envoy-gateway", client=True)
    pems = (ca.pair, server, client)
    out: dict[str, str] = {}
    for (cert_key, key_key), pair in zip(
        (("ca.crt", "ca.key"), ("tls.crt", "tls.key"), ("client.crt", "client.key")), pems, strict=True
    ):
        out[cert_key], out[key_key] = pair.cert_pem.decode(), pair.key_pem.decode()
    return out
