"""A local plaintext door to a TLS server whose certificate cannot be verified: the Inference Extension's EPP
serves TLS by default with a self-signed certificate that names nothing (no SAN, no CN), which gRPC's own TLS
always refuses (it checks the name, and Python's gRPC cannot turn that off).

``TlsTunnel(host=, port=)`` listens on a Unix socket in a private directory (mode 0700: only this process's
user can connect); each connection to it is piped, byte for byte, to ``host:port`` over TLS with ALPN ``h2``
(gRPC servers require it) and without certificate verification, as the Inference Extension's reference proxy
configuration connects to the EPP. The gRPC channel dials ``tunnel.target``. ``close()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Final

CHUNK: Final = 64 * 1024


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, ssl.SSLError):
        pass


class TlsTunnel:
    """See the module doc."""

    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._dir = Path(tempfile.mkdtemp(prefix="aigw-epp-tls-"))
        os.chmod(self._dir, 0o700)
        self.path = self._dir / "s"
        self._server: asyncio.Server | None = None
        self._ctx = _client_context()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def target(self) -> str:
        """The gRPC target to dial."""
        return f"unix:{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._ctx, server_hostname=self.host
                )
            except (OSError, ssl.SSLError):
                return  # the gRPC channel sees the connection close and reports the EPP unavailable
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except asyncio.CancelledError:
            pass  # close(): the tunnel is going away with its connections
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        shutil.rmtree(self._dir, ignore_errors=True)
