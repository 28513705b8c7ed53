"""The extension gRPC server the controller process runs: the hooks plus ``grpc.health.v1``.

Envoy Gateway blocks while its extension server is down (``waitForReady``, no deadline), so the controller
starts this server before it reports ready and stops it last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from controller.extensionserver.client_certs import ClientCertificates, no_client_certificates
from controller.extensionserver.metrics import ExtensionServerMetrics
from controller.extensionserver.options import ExtensionServerOptions
from controller.extensionserver.service import HOOKS, SERVICE_NAME, ExtensionService, generic_handler
from controller.extensionserver.xds import GatewayFilter, RouteFilter, every_gateway

DEFAULT_ADDRESS: Final = "127.0.0.1:1063"
"""Upstream's extension server port (1063) on loopback; in a cluster, listen on ``0.0.0.0:1063``."""

_UNIX_PREFIX = "unix://"


def parse_address(address: str) -> tuple[str, str | None]:
    """Check ``address`` and return ``(grpc bind target, unix socket path or None)``.

    Accepted: ``host:port`` (``[v6]:port`` for IPv6, port 0 = any free port) and ``unix:///absolute/path``.
    Raises ValueError otherwise.
    """
    if address.startswith("unix:"):
        if not address.startswith(_UNIX_PREFIX) or not address[len(_UNIX_PREFIX) :].startswith("/"):
            raise ValueError(f"unix socket address must be unix:///absolute/path, got {address!r}")
        return address, address[len(_UNIX_PREFIX) :]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address must be host:port or unix:///path, got {address!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"IPv6 hosts must be bracketed ([::1]:1063), got {address!r}")
    return address, None


class ExtensionServer:
    """The Envoy Gateway extension server.

    ``await start()`` binds and serves (raises if it cannot bind); ``started`` is then True and ``address`` is
    the bound address (with the real port when 0 was asked). ``await stop()`` marks health NOT_SERVING, lets
    in-flight calls finish for ``grace`` seconds and removes the Unix socket. Metrics go to ``registry``.
    ``generated`` decides which InferencePool routes are ours to point at the ORIGINAL_DST cluster (see
    ``xds.route_pool_routes_to_original_destination``), and which routes copy the credential metadata into
    headers; ``guarded`` which Gateways carry our ext_proc, where foreign routes that read that metadata are
    disabled (``credentials.route_credentials``; default: every Gateway); ``client_certificates`` which
    ext_proc client certificates it may add where Envoy Gateway left them out (``client_certs``).
    """

    def __init__(
        self,
        *,
        address: str = DEFAULT_ADDRESS,
        options: ExtensionServerOptions | None = None,
        generated: RouteFilter,
        registry: CollectorRegistry,
        guarded: GatewayFilter = every_gateway,
        logger: logging.Logger | None = None,
        client_certificates: ClientCertificates = no_client_certificates,
    ) -> None:
        self._bind_target, self._unix_path = parse_address(address)
        self._address = address
        self._options = options or ExtensionServerOptions()
        self._generated = generated
        self._guarded = guarded
        self._client_certificates = client_certificates
        self._log = logger or logging.getLogger(__name__)
        self._metrics = ExtensionServerMetrics(registry=registry, hooks=HOOKS)
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None

    @property
    def started(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def address(self) -> str:
        """Where clients reach the server: ``host:port`` (real port once started) or ``unix:///path``."""
        return self._address

    @property
    def options(self) -> ExtensionServerOptions:
        """The hook configuration."""
        return self._options

    async def start(self) -> None:
        """Bind and start serving, with health SERVING. Idempotent. Raises RuntimeError if it cannot bind."""
        if self._server is not None:
            return
        limit = self._options.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # One controller per address: never share a port with a stale process.
                ("grpc.so_reuseport", 0),
            ]
        )
        service = ExtensionService(
            options=self._options,
            generated=self._generated,
            guarded=self._guarded,
            logger=self._log,
            client_certificates=self._client_certificates,
        )
        server.add_generic_rpc_handlers((generic_handler(service, metrics=self._metrics, logger=self._log),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if self._unix_path is not None:
            Path(self._unix_path).parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale_socket(self._unix_path)
        try:
            port = server.add_insecure_port(self._bind_target)
        except RuntimeError as exc:
            raise RuntimeError(f"extension server cannot listen on {self._address}: {exc}") from exc
        if self._unix_path is None:
            host = self._bind_target.rpartition(":")[0]
            self._address = f"{host}:{port}"
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server, self._health = server, health_servicer
        self._log.info("extension server listening on %s", self._address)

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop serving; idempotent."""
        server, health_servicer = self._server, self._health
        if server is None:
            return
        self._server = self._health = None
        if health_servicer is not None:
            await health_servicer.enter_graceful_shutdown()
        await server.stop(grace)
        if self._unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._unix_path)
        self._log.info("extension server on %s stopped", self._address)

    async def healthy(self, *, deadline_s: float = 1.0) -> bool:
        """Whether the server answers its own gRPC health check as SERVING, dialled at ``address`` like a
        client would (for a readiness probe that checks more than the ``started`` flag)."""
        if self._server is None:
            return False
        try:
            async with grpc.aio.insecure_channel(self._address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=deadline_s
                )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def __aenter__(self) -> ExtensionServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _remove_stale_socket(self, path: str) -> None:
        """Remove a socket file left by a previous run; refuse to touch anything that is not a socket."""
        p = Path(path)
        if not p.exists():
            return
        if not p.is_socket():
            raise RuntimeError(f"extension server cannot listen on {self._address}: {path} is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                p.unlink()  # nobody listens: a leftover
                return
        raise RuntimeError(f"extension server cannot listen on {self._address}: {path} is in use")
