"""Mutual TLS for the ext_proc's gRPC server: only a client with a certificate signed by the given CA (the
gateway's Envoy) may open a stream, and so only it ever sees the credentials the ext_proc injects.

Contract: ``MutualTLSFiles(cert=..., key=..., client_ca=...)`` names three PEM files: the server's certificate
chain and key, and the CA bundle client certificates must chain to. ``server_credentials(files)`` returns
gRPC server credentials that require a client certificate (``require_client_authentication``) and re-read
the three files whenever one of them changes (checked at each new TLS handshake, by inode, mtime and size):
rotating the certificate or the CA needs no restart, and connections opened before keep their session. A
rotation that leaves the files unreadable or not PEM keeps the previous material (logged), never an open
server. Raises ``TLSFilesError`` at start when the files can't be read.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

_Stat = tuple[int, int, int] | None


class TLSFilesError(Exception):
    """A TLS file is missing, unreadable or not PEM."""


@dataclass(frozen=True, kw_only=True)
class MutualTLSFiles:
    cert: Path
    key: Path
    client_ca: Path

    def paths(self) -> tuple[Path, Path, Path]:
        return (self.cert, self.key, self.client_ca)


def _stat(path: Path) -> _Stat:
    try:
        st = os.stat(path)  # follows symlinks: a kubelet ..data swap changes the target's inode
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read(files: MutualTLSFiles) -> tuple[bytes, bytes, bytes]:
    out = []
    for path in files.paths():
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TLSFilesError(f"cannot read {path}: {e.strerror or e}") from e
        if b"-----BEGIN " not in data:
            raise TLSFilesError(f"{path} is not PEM")
        out.append(data)
    return out[0], out[1], out[2]


def _configuration(material: tuple[bytes, bytes, bytes]) -> grpc.ServerCertificateConfiguration:
    cert, key, ca = material
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


class _Reloader:
    """gRPC's certificate-config fetcher: called before each handshake, returns a new configuration when the
    files changed, else None (keep the current one)."""

    def __init__(self, files: MutualTLSFiles) -> None:
        self._files = files
        self._lock = threading.Lock()  # called from gRPC's threads
        self._seen = tuple(_stat(p) for p in files.paths())

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            now = tuple(_stat(p) for p in self._files.paths())
            if now == self._seen:
                return None
            self._seen = now
            try:
                config = _configuration(_read(self._files))
            except TLSFilesError as e:
                log.error("TLS files changed but cannot be used, keeping the previous ones: %s", e)
                return None
            log.info("TLS files changed: new server certificate and client CA loaded")
            return config


def server_credentials(files: MutualTLSFiles) -> grpc.ServerCredentials:
    """Credentials that require a client certificate signed by ``files.client_ca``; see the module
    docstring."""
    initial = _configuration(_read(files))
    return grpc.dynamic_ssl_server_credentials(initial, _Reloader(files), require_client_authentication=True)
