"""The hooks' output in the real Envoy: it validates, and the ext_proc's headers reach the chosen endpoint.

Envoy Gateway calls PostVirtualHostModify for each virtual host while translating, then PostTranslateModify
with the full lists; we do the same over a real gRPC channel, turn the result into a static bootstrap, check
it with ``envoy --mode validate``, then run Envoy and send requests carrying the headers the ext_proc would
set. A second listener serves the same route configuration *without* our hooks, to show they are what
makes the InferencePool route work.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from prometheus_client import CollectorRegistry

from aigw.upstream import UPSTREAM_NAME_HEADER, serve_in_thread
from api.headers import ORIGINAL_DST_CLUSTER, ORIGINAL_DST_HEADER, SELECTED_BACKEND_HEADER
from controller.extensionserver import ExtensionServer, ExtensionServerOptions
from controller.extensionserver._generated import envoygateway_extension_pb2 as pb
from controller.extensionserver.service import EnvoyGatewayExtensionStub
from tests.integration.extensionserver.static_bootstrap import static_bootstrap
from tests.realparts.envoy import running_envoy, validate_envoy_config
from tests.realparts.ports import free_port
from tests.unit.extensionserver import eg_xds

pytestmark = pytest.mark.envoy

ROUTE_TIMEOUT = timedelta(seconds=2)
BEFORE = "before-hooks"


@dataclass(frozen=True)
class ModifiedXds:
    """What Envoy Gateway would push after calling our hooks."""

    response: pb.PostTranslateModifyResponse


async def _call_hooks() -> ModifiedXds:
    options = ExtensionServerOptions(route_timeout=ROUTE_TIMEOUT)
    async with (
        ExtensionServer(
            address="127.0.0.1:0", options=options, generated=eg_xds.generated(), registry=CollectorRegistry()
        ) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = EnvoyGatewayExtensionStub(channel)
        routes = eg_xds.route_configurations()
        for route_config in routes:
            for vh in route_config.virtual_hosts:
                reply = await stub.call(
                    "PostVirtualHostModify", pb.PostVirtualHostModifyRequest(virtual_host=vh), deadline_s=10
                )
                if reply.HasField("virtual_host"):
                    vh.CopyFrom(reply.virtual_host)
        response = await stub.call(
            "PostTranslateModify",
            pb.PostTranslateModifyRequest(
                clusters=eg_xds.clusters(),
                secrets=eg_xds.secrets(),
                listeners=eg_xds.listeners(),
                routes=routes,
            ),
            deadline_s=10,
        )
    return ModifiedXds(response=response)


def _unmodified_listener_and_routes() -> tuple[Listener, RouteConfiguration]:
    """Envoy Gateway's listener and route configuration as they were before any hook, renamed apart."""
    listener = eg_xds.listeners()[0]
    listener.name = BEFORE
    listener.default_filter_chain.name = BEFORE
    hcm = HttpConnectionManager()
    listener.default_filter_chain.filters[0].typed_config.Unpack(hcm)
    hcm.rds.route_config_name = BEFORE
    hcm.stat_prefix = BEFORE
    listener.default_filter_chain.filters[0].typed_config.Pack(hcm)
    routes = eg_xds.route_configurations()[0]
    routes.name = BEFORE
    return listener, routes


@dataclass(frozen=True)
class Gateway:
    """The running Envoy and the upstreams behind it."""

    url: str
    before_url: str
    backend_a: int
    pool_endpoints: dict[str, int]


@pytest.fixture(scope="module")
def modified() -> ModifiedXds:
    return asyncio.run(_call_hooks())


@pytest.fixture(scope="module")
def bootstrap_parts(modified: ModifiedXds) -> dict[str, Any]:
    before_listener, before_routes = _unmodified_listener_and_routes()
    return {
        "listeners": [(lis, free_port()) for lis in modified.response.listeners]
        + [(before_listener, free_port())],
        "routes": [*modified.response.routes, before_routes],
    }


def _config(
    modified: ModifiedXds,
    parts: dict[str, Any],
    *,
    backend_port: int,
    clusters: Sequence[Cluster] | None = None,
) -> dict[str, Any]:
    """The static bootstrap of the hooks' output; both EDS clusters point at 127.0.0.1:``backend_port``."""
    return static_bootstrap(
        clusters=modified.response.clusters if clusters is None else clusters,
        secrets=modified.response.secrets,
        listeners=parts["listeners"],
        routes=parts["routes"],
        eds_endpoints={
            eg_xds.BACKEND_CLUSTER: ("127.0.0.1", backend_port),
            eg_xds.PLAIN_CLUSTER: ("127.0.0.1", backend_port),
        },
    )


@pytest.fixture(scope="module")
def gateway(
    modified: ModifiedXds, bootstrap_parts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with (
        serve_in_thread(name="backend-a") as backend_a,
        serve_in_thread(name="pod-1") as pod_1,
        serve_in_thread(name="pod-2") as pod_2,
    ):
        config = _config(modified, bootstrap_parts, backend_port=backend_a.port)
        workdir = tmp_path_factory.mktemp("envoy")
        validate_envoy_config(config, workdir=workdir)
        with running_envoy(config, workdir=workdir):
            (_, port), (_, before_port) = bootstrap_parts["listeners"]
            yield Gateway(
                url=f"http://127.0.0.1:{port}",
                before_url=f"http://127.0.0.1:{before_port}",
                backend_a=backend_a.port,
                pool_endpoints={"pod-1": pod_1.port, "pod-2": pod_2.port},
            )


@dataclass(frozen=True)
class Reply:
    status: int
    upstream: str | None
    body: bytes


def _post(base: str, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(
        f"{base}/v1/chat/completions",
        data=b'{"model":"llama","messages":[{"role":"user","content":"hi"}]}',
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return Reply(resp.status, resp.headers.get(UPSTREAM_NAME_HEADER), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.headers.get(UPSTREAM_NAME_HEADER), err.read())


def _pool_headers(port: int) -> dict[str, str]:
    """What the ext_proc sets after picking endpoint 127.0.0.1:port of an InferencePool."""
    return {SELECTED_BACKEND_HEADER: ORIGINAL_DST_CLUSTER, ORIGINAL_DST_HEADER: f"127.0.0.1:{port}"}


def test_modified_xds_passes_envoy_validation(
    modified: ModifiedXds, bootstrap_parts: dict[str, Any], tmp_path: Path
) -> None:
    config = _config(modified, bootstrap_parts, backend_port=9)
    cluster_names = [c["name"] for c in config["static_resources"]["clusters"]]
    assert ORIGINAL_DST_CLUSTER in cluster_names
    validate_envoy_config(config, workdir=tmp_path)


def test_envoy_rejects_a_broken_original_dst_cluster(
    modified: ModifiedXds, bootstrap_parts: dict[str, Any], tmp_path: Path
) -> None:
    """The validation step can fail: without CLUSTER_PROVIDED, Envoy refuses an ORIGINAL_DST cluster."""
    clusters = list(modified.response.clusters)
    broken = type(clusters[-1])()
    broken.CopyFrom(clusters[-1])
    broken.lb_policy = broken.ROUND_ROBIN
    config = _config(modified, bootstrap_parts, backend_port=9, clusters=[*clusters[:-1], broken])
    with pytest.raises(AssertionError, match="envoy rejected"):
        validate_envoy_config(config, workdir=tmp_path)


@pytest.mark.parametrize("pod", ["pod-1", "pod-2"])
def test_pool_request_reaches_the_endpoint_named_in_the_header(gateway: Gateway, pod: str) -> None:
    reply = _post(gateway.url, _pool_headers(gateway.pool_endpoints[pod]))

    assert reply.status == 200, reply.body
    assert reply.upstream == pod


def test_normal_backend_route_still_reaches_its_cluster(gateway: Gateway) -> None:
    reply = _post(gateway.url, {SELECTED_BACKEND_HEADER: eg_xds.BACKEND_HEADER_VALUE})

    assert reply.status == 200, reply.body
    assert reply.upstream == "backend-a"


def test_without_the_hooks_the_pool_route_answers_500(gateway: Gateway) -> None:
    reply = _post(gateway.before_url, _pool_headers(gateway.pool_endpoints["pod-1"]))

    assert reply.status == 500
    assert reply.upstream is None


def test_pool_request_without_destination_header_gets_no_healthy_upstream(gateway: Gateway) -> None:
    reply = _post(gateway.url, {SELECTED_BACKEND_HEADER: ORIGINAL_DST_CLUSTER})

    assert reply.status == 503
    assert reply.upstream is None


def test_pool_route_timeout_is_the_configured_one(gateway: Gateway) -> None:
    headers = {**_pool_headers(gateway.pool_endpoints["pod-1"]), "x-response-delay-ms": "4000"}

    reply = _post(gateway.url, headers)

    assert reply.status == 504  # Envoy's upstream request timeout, after ROUTE_TIMEOUT (2 s) < 4 s
    assert b"upstream request timeout" in reply.body
