"""The gRPC ExternalProcessor server (grpc.aio), with gRPC health, large-message limits and graceful stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.processor import Dependencies, RequestProcessor

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "envoy.service.ext_proc.v3.ExternalProcessor"
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
"""gRPC message limit both ways: a buffered body arrives as one message (the default 4 MiB fails 5 MB
prompts)."""


def _process_handler(deps: Dependencies) -> grpc.RpcMethodHandler:
    async def process(_: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # explicit read()/write() instead of an async generator: fewer event-loop hops per message
        proc = RequestProcessor(deps=deps)
        read, write, eof = context.read, context.write, grpc.aio.EOF
        try:
            while (req := await read()) is not eof:
                out = proc.handle(req)
                # bytes, except a request routed to an external endpoint picker, which is awaited
                await write(out if isinstance(out, bytes) else await out)
        finally:
            proc.finish()

    # response_serializer=None: the processor already returns serialized bytes (pre-built where constant)
    return grpc.stream_stream_rpc_method_handler(
        process, request_deserializer=ep.ProcessingRequest.FromString, response_serializer=None
    )


class ExtProcServer:
    """The listening server. ``start`` binds ``address`` (``host:port`` or ``unix:/path``), with TLS when
    ``credentials`` are given (see ``extproc.tls``); ``stop`` drains."""

    def __init__(
        self,
        *,
        deps: Dependencies,
        address: str,
        reuse_port: bool = False,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_concurrent_streams", 10000),
        ]
        self._server = grpc.aio.server(options=options)
        handler = grpc.method_handlers_generic_handler(SERVICE_NAME, {"Process": _process_handler(deps)})
        self._server.add_generic_rpc_handlers((handler,))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        # with credentials, the port speaks TLS only: there is no plaintext listener next to it
        if credentials is not None:
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        self.address = address

    async def start(self) -> None:
        await self._server.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, *, grace: float) -> None:
        """Report NOT_SERVING, refuse new streams and give open ones ``grace`` seconds to finish."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)

    async def wait(self) -> None:
        await self._server.wait_for_termination()
