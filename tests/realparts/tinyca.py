"""A tiny certificate authority for the real parts our tests start (kube-apiserver, TLS servers).

Mirrors envtest's ``tinyca``: ECDSA P-256 keys, certificates valid for 168 hours, all in memory, over the
controller's own ``controller.gateway.certs`` (``KeyPair.write_pair`` puts a pair on disk as PEM).
"""

from __future__ import annotations

import datetime

from controller.gateway.certs import CertificateAuthority, KeyPair

VALIDITY = datetime.timedelta(hours=168)


class TinyCA(CertificateAuthority):
    """A new self-signed CA whose certificates are valid for ``VALIDITY``."""

    def __init__(self, common_name: str, organizations: tuple[str, ...] = ()) -> None:
        ca = CertificateAuthority.new(common_name, validity=VALIDITY, organizations=organizations)
        super().__init__(ca.pair, validity=VALIDITY)


__all__ = ["VALIDITY", "KeyPair", "TinyCA"]
