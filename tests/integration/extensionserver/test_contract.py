"""The extension server over a real gRPC channel, called the way Envoy Gateway v1.9.0 calls it."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_components_pb2 import Route
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from api.headers import CREDENTIAL_HEADERS, ORIGINAL_DST_CLUSTER, ORIGINAL_DST_HEADER
from controller.extensionserver import ExtensionServer, ExtensionServerOptions
from controller.extensionserver._generated import envoygateway_extension_pb2 as pb
from controller.extensionserver.metrics import ExtensionServerMetrics
from controller.extensionserver.service import (
    HOOKS,
    SERVICE_NAME,
    EnvoyGatewayExtensionStub,
    ExtensionService,
    HookReply,
    generic_handler,
)
from tests.unit.extensionserver import eg_xds

LOGGER = "test.extensionserver"
BIG = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", BIG), ("grpc.max_send_message_length", BIG)]


def _bytes(messages: Any) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in messages]


def _calls(registry: CollectorRegistry, hook: str, result: str) -> float:
    value = registry.get_sample_value(
        "aigw_extension_server_hook_calls_total", {"hook": hook, "result": result}
    )
    assert value is not None
    return value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def server(registry: CollectorRegistry) -> AsyncIterator[ExtensionServer]:
    srv = ExtensionServer(
        address="127.0.0.1:0",
        generated=eg_xds.generated(),
        registry=registry,
        logger=logging.getLogger(LOGGER),
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=1)


@pytest.fixture
async def stub(server: ExtensionServer) -> AsyncIterator[EnvoyGatewayExtensionStub]:
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
        yield EnvoyGatewayExtensionStub(channel)


def _translate_request() -> pb.PostTranslateModifyRequest:
    """As Envoy Gateway sends it with every translation.*.includeAll set, plus one extension policy."""
    return pb.PostTranslateModifyRequest(
        post_translate_context=pb.PostTranslateExtensionContext(
            extension_resources=[pb.ExtensionResource(unstructured_bytes=b'{"kind":"Whatever"}')]
        ),
        clusters=eg_xds.clusters(),
        secrets=eg_xds.secrets(),
        listeners=eg_xds.listeners(),
        routes=eg_xds.route_configurations(),
    )


async def test_post_translate_modify_adds_the_cluster_and_returns_everything_else_unchanged(
    server: ExtensionServer, stub: EnvoyGatewayExtensionStub, registry: CollectorRegistry
) -> None:
    request = _translate_request()

    response = await stub.call("PostTranslateModify", request, deadline_s=10)

    assert [c.name for c in response.clusters] == [
        eg_xds.BACKEND_CLUSTER,
        eg_xds.PLAIN_CLUSTER,
        ORIGINAL_DST_CLUSTER,
    ]
    assert _bytes(response.clusters[:2]) == _bytes(request.clusters)
    ours = response.clusters[2]
    assert ours.type == Cluster.ORIGINAL_DST and ours.lb_policy == Cluster.CLUSTER_PROVIDED
    assert ours.original_dst_lb_config.http_header_name == ORIGINAL_DST_HEADER
    # The response lists replace Envoy Gateway's: whatever we do not touch must come back as it was sent.
    assert _bytes(response.secrets) == _bytes(request.secrets)
    assert _bytes(response.listeners) == _bytes(request.listeners)
    assert _bytes(response.routes) == _bytes(request.routes)
    assert _calls(registry, "PostTranslateModify", "ok") == 1


async def test_post_translate_modify_is_idempotent_over_the_wire(stub: EnvoyGatewayExtensionStub) -> None:
    first = await stub.call("PostTranslateModify", _translate_request(), deadline_s=10)
    again = pb.PostTranslateModifyRequest(clusters=first.clusters, secrets=first.secrets)

    second = await stub.call("PostTranslateModify", again, deadline_s=10)

    assert _bytes(second.clusters) == _bytes(first.clusters)
    assert [c.name for c in second.clusters].count(ORIGINAL_DST_CLUSTER) == 1


async def test_post_translate_modify_with_the_default_include_settings(
    stub: EnvoyGatewayExtensionStub,
) -> None:
    """Envoy Gateway's defaults send clusters and secrets only; listeners and routes stay empty."""
    request = pb.PostTranslateModifyRequest(clusters=eg_xds.clusters(), secrets=eg_xds.secrets())

    response = await stub.call("PostTranslateModify", request, deadline_s=10)

    assert len(response.clusters) == 3 and len(response.secrets) == 1
    assert not response.listeners and not response.routes


async def test_post_virtual_host_modify_points_the_pool_route_at_the_cluster(
    stub: EnvoyGatewayExtensionStub, registry: CollectorRegistry
) -> None:
    vh = eg_xds.route_configurations()[0].virtual_hosts[0]

    response = await stub.call(
        "PostVirtualHostModify",
        pb.PostVirtualHostModifyRequest(
            virtual_host=vh, post_virtual_host_context=pb.PostVirtualHostExtensionContext()
        ),
        deadline_s=10,
    )

    out = {r.name: r for r in response.virtual_host.routes}
    assert list(out) == [r.name for r in vh.routes]
    pool = out[eg_xds.POOL_ROUTE]
    assert pool.route.cluster == ORIGINAL_DST_CLUSTER
    assert pool.route.timeout.seconds == 60
    by_name = {r.name: r for r in vh.routes}
    assert _bytes([out[eg_xds.PLAIN_ROUTE]]) == _bytes([by_name[eg_xds.PLAIN_ROUTE]])
    # our routes also copy the credential headers from the ext_proc's metadata; nothing else changes
    backend = out[eg_xds.BACKEND_ROUTE]
    for route in (backend, pool):
        assert [o.header.key for o in route.request_headers_to_add] == list(CREDENTIAL_HEADERS)
    del backend.request_headers_to_add[:]
    assert _bytes([backend]) == _bytes([by_name[eg_xds.BACKEND_ROUTE]])
    assert _calls(registry, "PostVirtualHostModify", "ok") == 1


async def test_route_timeout_comes_from_the_options(registry: CollectorRegistry) -> None:
    from datetime import timedelta

    options = ExtensionServerOptions(route_timeout=timedelta(seconds=900))
    async with (
        ExtensionServer(
            address="127.0.0.1:0", options=options, generated=eg_xds.generated(), registry=registry
        ) as srv,
        grpc.aio.insecure_channel(srv.address) as channel,
    ):
        vh = eg_xds.route_configurations()[0].virtual_hosts[0]
        response = await EnvoyGatewayExtensionStub(channel).call(
            "PostVirtualHostModify", pb.PostVirtualHostModifyRequest(virtual_host=vh), deadline_s=10
        )
    (pool,) = [r for r in response.virtual_host.routes if r.name == eg_xds.POOL_ROUTE]
    assert pool.route.timeout.seconds == 900


@pytest.mark.parametrize(
    ("hook", "request_message", "field"),
    [
        (
            "PostRouteModify",
            pb.PostRouteModifyRequest(
                route=json_format.ParseDict(eg_xds.backend_route(), Route()),
                post_route_context=pb.PostRouteExtensionContext(hostnames=["*"]),
            ),
            "route",
        ),
        (
            "PostHTTPListenerModify",
            pb.PostHTTPListenerModifyRequest(listener=eg_xds.listeners()[0]),
            "listener",
        ),
        ("PostClusterModify", pb.PostClusterModifyRequest(cluster=eg_xds.clusters()[0]), "cluster"),
        (
            "PostEndpointsModify",
            pb.PostEndpointsModifyRequest(
                load_assignment=json_format.ParseDict(
                    {
                        "cluster_name": eg_xds.BACKEND_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {"address": "10.0.0.7", "port_value": 8000}
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                    ClusterLoadAssignment(),
                )
            ),
            "load_assignment",
        ),
    ],
)
async def test_other_hooks_echo_their_input(
    stub: EnvoyGatewayExtensionStub, hook: str, request_message: Message, field: str
) -> None:
    response = await stub.call(hook, request_message, deadline_s=10)

    assert response.HasField(field)
    assert _bytes([getattr(response, field)]) == _bytes([getattr(request_message, field)])


async def test_unexpected_shapes_pass_through_with_a_warning(
    stub: EnvoyGatewayExtensionStub, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    pool = eg_xds.pool_route()
    del pool["direct_response"]  # a route with no action at all
    vh_dict = eg_xds.virtual_host_dict()
    vh_dict["routes"] = [pool, eg_xds.plain_route()]
    vh = json_format.ParseDict(vh_dict, type(eg_xds.route_configurations()[0].virtual_hosts[0])())

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        response = await stub.call(
            "PostVirtualHostModify", pb.PostVirtualHostModifyRequest(virtual_host=vh), deadline_s=10
        )
        empty = await stub.call("PostVirtualHostModify", pb.PostVirtualHostModifyRequest(), deadline_s=10)

    out = {r.name: r for r in response.virtual_host.routes}
    assert list(out) == [r.name for r in vh.routes]
    assert out[eg_xds.POOL_ROUTE].WhichOneof("action") is None  # left without an action
    assert _bytes([out[eg_xds.PLAIN_ROUTE]]) == _bytes([vh.routes[1]])
    assert not empty.HasField("virtual_host")  # Go's nil: Envoy Gateway keeps its own virtual host
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(eg_xds.POOL_ROUTE in w and "no action" in w for w in warnings), warnings
    assert any("without a virtual host" in w for w in warnings), warnings
    assert _calls(registry, "PostVirtualHostModify", "passthrough") == 2


async def test_each_call_is_logged_at_debug_with_counts(
    stub: EnvoyGatewayExtensionStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        await stub.call("PostTranslateModify", _translate_request(), deadline_s=10)

    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert line.startswith("PostTranslateModify [ok,")
    assert "clusters 2 -> 3 (added 1" in line and "listeners 1" in line and "routes 1" in line


async def test_metrics_count_calls_by_hook_and_result_and_time_them(
    stub: EnvoyGatewayExtensionStub, registry: CollectorRegistry
) -> None:
    for _ in range(3):
        await stub.call("PostTranslateModify", _translate_request(), deadline_s=10)
    await stub.call(
        "PostClusterModify", pb.PostClusterModifyRequest(cluster=eg_xds.clusters()[0]), deadline_s=10
    )

    assert _calls(registry, "PostTranslateModify", "ok") == 3
    assert _calls(registry, "PostClusterModify", "ok") == 1
    assert _calls(registry, "PostRouteModify", "ok") == 0  # every series exists from the start
    count = registry.get_sample_value(
        "aigw_extension_server_hook_duration_seconds_count", {"hook": "PostTranslateModify"}
    )
    total = registry.get_sample_value(
        "aigw_extension_server_hook_duration_seconds_sum", {"hook": "PostTranslateModify"}
    )
    assert count == 3 and total is not None and total > 0


async def test_messages_larger_than_grpc_default_limit_are_accepted(stub: EnvoyGatewayExtensionStub) -> None:
    request = _translate_request()
    request.secrets[0].validation_context.trusted_ca.inline_bytes = b"x" * (6 * 1024 * 1024)

    response = await stub.call("PostTranslateModify", request, deadline_s=30)

    assert _bytes(response.secrets) == _bytes(request.secrets)


async def test_health_is_serving_until_stop(registry: CollectorRegistry) -> None:
    srv = ExtensionServer(address="127.0.0.1:0", generated=eg_xds.generated(), registry=registry)
    assert not srv.started
    await srv.start()
    assert srv.started and not srv.address.endswith(":0")
    async with grpc.aio.insecure_channel(srv.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await srv.healthy()
        await srv.stop(grace=1)
        assert not srv.started
        assert not await srv.healthy()
        with pytest.raises(grpc.aio.AioRpcError):
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)


async def test_serves_on_a_unix_socket_and_removes_it(tmp_path: Path, registry: CollectorRegistry) -> None:
    path = tmp_path / "run" / "ext.sock"
    # A socket file left by a crashed run must not stop a restart.
    path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(path))
    assert path.is_socket()

    async with ExtensionServer(
        address=f"unix://{path}", generated=eg_xds.generated(), registry=registry
    ) as srv:
        assert srv.address == f"unix://{path}"
        assert await srv.healthy()
        async with grpc.aio.insecure_channel(srv.address) as channel:
            response = await EnvoyGatewayExtensionStub(channel).call(
                "PostTranslateModify", pb.PostTranslateModifyRequest(), deadline_s=10
            )
        assert [c.name for c in response.clusters] == [ORIGINAL_DST_CLUSTER]
        # A second server on the same live socket is refused instead of stealing it.
        with pytest.raises(RuntimeError, match="in use"):
            await ExtensionServer(
                address=f"unix://{path}", generated=eg_xds.generated(), registry=CollectorRegistry()
            ).start()
    assert not path.exists()


async def test_start_fails_loudly_when_the_port_is_taken(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = ExtensionServer(address=f"127.0.0.1:{port}", generated=eg_xds.generated(), registry=registry)
        with pytest.raises(RuntimeError, match="cannot listen"):
            await srv.start()
        assert not srv.started


class _BrokenService(ExtensionService):
    """A service whose translate hook fails, standing in for "cannot produce valid xDS"."""

    def post_translate_modify(self, request: pb.PostTranslateModifyRequest) -> HookReply:
        raise ValueError("boom")


async def test_a_failing_hook_answers_internal_and_counts_an_error(registry: CollectorRegistry) -> None:
    logger = logging.getLogger(LOGGER)
    metrics = ExtensionServerMetrics(registry=registry, hooks=HOOKS)
    service = _BrokenService(options=ExtensionServerOptions(), generated=eg_xds.generated(), logger=logger)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((generic_handler(service, metrics=metrics, logger=logger),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = EnvoyGatewayExtensionStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.call("PostTranslateModify", _translate_request(), deadline_s=10)
            assert err.value.code() == grpc.StatusCode.INTERNAL
            assert "boom" in (err.value.details() or "")
            # The other hooks keep working.
            await stub.call("PostVirtualHostModify", pb.PostVirtualHostModifyRequest(), deadline_s=10)
    finally:
        await server.stop(None)
    assert _calls(registry, "PostTranslateModify", "error") == 1
    assert _calls(registry, "PostTranslateModify", "ok") == 0
