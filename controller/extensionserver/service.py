"""The ``envoygateway.extension.EnvoyGatewayExtension`` gRPC service: thin handlers around the pure functions.

No gRPC stub is generated (see ``codegen.py``): the method table comes from the service descriptor, so the
method paths are exactly ``/envoygateway.extension.EnvoyGatewayExtension/<Rpc>`` as compiled from the
``.proto``.

Each handler returns the response plus a result for the metrics (``ok``, ``passthrough``) and a one-line
summary of what changed for the debug log. An exception in a handler means we cannot produce valid xDS: the
call fails with INTERNAL, and Envoy Gateway keeps its previous xDS (with ``failOpen``, the unmodified one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf.message import Message

from controller.extensionserver._generated import envoygateway_extension_pb2 as pb
from controller.extensionserver.client_certs import (
    ClientCertificates,
    add_missing_client_certificates,
    no_client_certificates,
)
from controller.extensionserver.credentials import route_credentials
from controller.extensionserver.metrics import (
    RESULT_ERROR,
    RESULT_OK,
    RESULT_PASSTHROUGH,
    ExtensionServerMetrics,
)
from controller.extensionserver.options import ExtensionServerOptions
from controller.extensionserver.xds import (
    GatewayFilter,
    RouteFilter,
    add_original_destination_cluster,
    every_gateway,
    route_pool_routes_to_original_destination,
)

SERVICE_NAME: Final = "envoygateway.extension.EnvoyGatewayExtension"
SERVICE_DESCRIPTOR: Final = pb.DESCRIPTOR.services_by_name["EnvoyGatewayExtension"]
HOOKS: Final[tuple[str, ...]] = tuple(m.name for m in SERVICE_DESCRIPTOR.methods)
"""Every RPC of the service, in ``.proto`` order."""


def method_path(hook: str) -> str:
    """The gRPC method path of ``hook``: ``/envoygateway.extension.EnvoyGatewayExtension/<hook>``."""
    return f"/{SERVICE_NAME}/{SERVICE_DESCRIPTOR.methods_by_name[hook].name}"


def _message_classes(hook: str) -> tuple[type[Message], type[Message]]:
    method = SERVICE_DESCRIPTOR.methods_by_name[hook]
    request: type[Message] = getattr(pb, method.input_type.name)
    response: type[Message] = getattr(pb, method.output_type.name)
    return request, response


@dataclass(frozen=True, kw_only=True)
class HookReply:
    """What a handler produced: the response, the metrics result and the log summary."""

    response: Message
    result: str = RESULT_OK
    summary: str = "unchanged"


class ExtensionService:
    """The hooks. ``PostTranslateModify`` and ``PostVirtualHostModify`` do the work; the other hooks return
    their input unchanged, so that any ``hooks.xdsTranslator.post`` list in Envoy Gateway's config is safe."""

    def __init__(
        self,
        *,
        options: ExtensionServerOptions,
        generated: RouteFilter,
        logger: logging.Logger,
        guarded: GatewayFilter = every_gateway,
        client_certificates: ClientCertificates = no_client_certificates,
    ) -> None:
        self._options = options
        self._generated = generated
        self._guarded = guarded
        self._client_certificates = client_certificates
        self._log = logger
        self._handlers: dict[str, Callable[[Any], HookReply]] = {
            "PostRouteModify": self.post_route_modify,
            "PostVirtualHostModify": self.post_virtual_host_modify,
            "PostHTTPListenerModify": self.post_http_listener_modify,
            "PostClusterModify": self.post_cluster_modify,
            "PostEndpointsModify": self.post_endpoints_modify,
            "PostTranslateModify": self.post_translate_modify,
        }

    @property
    def handlers(self) -> Mapping[str, Callable[[Any], HookReply]]:
        """Handler per RPC name."""
        return self._handlers

    def post_translate_modify(self, request: pb.PostTranslateModifyRequest) -> HookReply:
        """Add the original-destination cluster and the ext_proc client certificates Envoy Gateway left out
        (``client_certs``); return every list Envoy Gateway sent (they replace its)."""
        opts = self._options
        result = add_original_destination_cluster(
            request.clusters,
            header_name=opts.original_dst_header,
            connect_timeout=opts.connect_timeout,
            cluster_name=opts.cluster_name,
        )
        if result.replaced or result.removed_duplicates:
            self._log.warning(
                "PostTranslateModify: cluster %r was not ours as sent (replaced %d, dropped %d duplicates)",
                opts.cluster_name,
                result.replaced,
                result.removed_duplicates,
            )
        certs = add_missing_client_certificates(
            result.clusters, request.secrets, lookup=self._client_certificates
        )
        response = pb.PostTranslateModifyResponse(
            clusters=result.clusters,
            secrets=certs.secrets,
            listeners=request.listeners,
            routes=request.routes,
        )
        summary = (
            f"clusters {len(request.clusters)} -> {len(result.clusters)} (added {result.added}, "
            f"replaced {result.replaced}, dropped duplicates {result.removed_duplicates}); secrets "
            f"{len(request.secrets)}, added client certificates {certs.added}; passed through "
            f"listeners {len(request.listeners)}, "
            f"routes {len(request.routes)}"
        )
        return HookReply(response=response, summary=summary)

    def post_virtual_host_modify(self, request: pb.PostVirtualHostModifyRequest) -> HookReply:
        """Point the InferencePool routes of the virtual host at the original-destination cluster; give our
        routes the credential headers and disable foreign routes that read them (``credentials``)."""
        if not request.HasField("virtual_host"):
            # An unset virtual_host in the response tells Envoy Gateway to keep its own.
            self._log.warning("PostVirtualHostModify: request without a virtual host; nothing to modify")
            return HookReply(
                response=pb.PostVirtualHostModifyResponse(),
                result=RESULT_PASSTHROUGH,
                summary="no virtual host",
            )
        opts = self._options
        result = route_pool_routes_to_original_destination(
            request.virtual_host,
            timeout=opts.route_timeout,
            generated=self._generated,
            header_name=opts.selected_backend_header,
            cluster_name=opts.cluster_name,
        )
        credentials = route_credentials(result.virtual_host, generated=self._generated, guarded=self._guarded)
        warnings = [*result.warnings, *credentials.warnings]
        for warning in warnings:
            self._log.warning("PostVirtualHostModify: %s", warning)
        summary = (
            f"virtual host {request.virtual_host.name!r}: routes {len(request.virtual_host.routes)}, "
            f"pointed at {opts.cluster_name} {result.rewritten}, already pointed {result.already_done}, "
            f"not ours {result.foreign}, credential headers added {credentials.injected} (already "
            f"{credentials.already_done}), foreign reading credentials disabled {credentials.disabled}, "
            f"warnings {len(warnings)}"
        )
        return HookReply(
            response=pb.PostVirtualHostModifyResponse(virtual_host=credentials.virtual_host),
            result=RESULT_PASSTHROUGH if warnings else RESULT_OK,
            summary=summary,
        )

    def post_route_modify(self, request: pb.PostRouteModifyRequest) -> HookReply:
        """Echo the route."""
        return HookReply(response=pb.PostRouteModifyResponse(route=request.route))

    def post_http_listener_modify(self, request: pb.PostHTTPListenerModifyRequest) -> HookReply:
        """Echo the listener."""
        return HookReply(response=pb.PostHTTPListenerModifyResponse(listener=request.listener))

    def post_cluster_modify(self, request: pb.PostClusterModifyRequest) -> HookReply:
        """Echo the cluster."""
        return HookReply(response=pb.PostClusterModifyResponse(cluster=request.cluster))

    def post_endpoints_modify(self, request: pb.PostEndpointsModifyRequest) -> HookReply:
        """Echo the load assignment."""
        return HookReply(response=pb.PostEndpointsModifyResponse(load_assignment=request.load_assignment))


def _instrumented(
    hook: str,
    handler: Callable[[Any], HookReply],
    *,
    metrics: ExtensionServerMetrics,
    logger: logging.Logger,
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]:
    """An async gRPC behaviour: run ``handler``, log at debug, count, time, map exceptions to INTERNAL."""

    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        start = time.perf_counter()
        try:
            reply = handler(request)
        except Exception as exc:
            metrics.observe(hook=hook, result=RESULT_ERROR, seconds=time.perf_counter() - start)
            logger.exception("%s: cannot produce valid xDS", hook)
            await context.abort(grpc.StatusCode.INTERNAL, f"{hook}: cannot produce valid xDS: {exc}")
            raise  # unreachable: abort raises
        elapsed = time.perf_counter() - start
        metrics.observe(hook=hook, result=reply.result, seconds=elapsed)
        logger.debug("%s [%s, %.1f ms]: %s", hook, reply.result, elapsed * 1000, reply.summary)
        return reply.response

    return behaviour


def generic_handler(
    service: ExtensionService, *, metrics: ExtensionServerMetrics, logger: logging.Logger
) -> grpc.GenericRpcHandler:
    """The gRPC handler serving every RPC of the service descriptor. Raises if a hook has no handler."""
    missing = set(HOOKS) - set(service.handlers)
    if missing:
        raise RuntimeError(f"no handler for {sorted(missing)}")
    methods = {}
    for hook in HOOKS:
        request_class, response_class = _message_classes(hook)
        methods[hook] = grpc.unary_unary_rpc_method_handler(
            _instrumented(hook, service.handlers[hook], metrics=metrics, logger=logger),
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


class EnvoyGatewayExtensionStub:
    """A client of the service, as Envoy Gateway's generated Go client calls it (used by tests and probes).

    ``stub.call("PostTranslateModify", request, deadline_s=5)`` returns the decoded response.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        for hook in HOOKS:
            request_class, response_class = _message_classes(hook)
            self._calls[hook] = channel.unary_unary(
                method_path(hook),
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )

    async def call(self, hook: str, request: Message, *, deadline_s: float | None = None) -> Any:
        """Call ``hook`` with ``request`` (gRPC deadline ``deadline_s``); raise ``grpc.aio.AioRpcError`` on
        a gRPC error."""
        return await self._calls[hook](request, timeout=deadline_s)
