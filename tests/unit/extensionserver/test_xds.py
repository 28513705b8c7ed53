"""The pure functions: the original-destination cluster and the InferencePool routes."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import RoutingPriority
from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from google.protobuf import json_format

from api.headers import ORIGINAL_DST_CLUSTER, ORIGINAL_DST_HEADER, SELECTED_BACKEND_HEADER
from controller.extensionserver.xds import (
    RouteSource,
    add_original_destination_cluster,
    is_pool_route,
    original_destination_cluster,
    route_pool_routes_to_original_destination,
    route_source,
    virtual_host_gateway,
)
from tests.unit.extensionserver import eg_xds

TEN_S = timedelta(seconds=10)


def _cluster_names(clusters: list[Cluster]) -> list[str]:
    return [c.name for c in clusters]


def _add(clusters: list[Cluster], **kwargs: Any) -> Any:
    kwargs.setdefault("header_name", ORIGINAL_DST_HEADER)
    kwargs.setdefault("connect_timeout", TEN_S)
    return add_original_destination_cluster(clusters, **kwargs)


# --- the cluster -------------------------------------------------------------------------------------------


def test_added_cluster_is_original_dst_reading_our_header() -> None:
    result = _add(eg_xds.clusters(), connect_timeout=timedelta(seconds=2.5))

    ours = [c for c in result.clusters if c.name == ORIGINAL_DST_CLUSTER]
    assert len(ours) == 1
    cluster = ours[0]
    assert cluster.type == Cluster.ORIGINAL_DST
    assert cluster.lb_policy == Cluster.CLUSTER_PROVIDED
    assert cluster.original_dst_lb_config.use_http_header is True
    assert cluster.original_dst_lb_config.http_header_name == ORIGINAL_DST_HEADER
    assert (cluster.connect_timeout.seconds, cluster.connect_timeout.nanos) == (2, 500_000_000)
    assert not cluster.HasField("load_assignment")
    assert not cluster.health_checks
    assert result.added == 1 and result.replaced == 0 and result.removed_duplicates == 0 and result.changed


def test_cluster_has_envoy_gateway_default_circuit_breakers() -> None:
    cluster = original_destination_cluster(header_name=ORIGINAL_DST_HEADER, connect_timeout=TEN_S)
    # Exactly what Envoy Gateway's own EDS clusters carry (see eg_xds.eds_cluster, from EG's test data).
    assert cluster.circuit_breakers == eg_xds.clusters()[0].circuit_breakers
    (threshold,) = cluster.circuit_breakers.thresholds
    assert threshold.priority == RoutingPriority.DEFAULT
    assert threshold.max_retries.value == 1024
    assert not threshold.HasField("max_connections")


def test_configured_header_name_is_used() -> None:
    result = _add([], header_name="x-gateway-destination-endpoint")
    assert result.clusters[0].original_dst_lb_config.http_header_name == "x-gateway-destination-endpoint"


def test_other_clusters_unchanged_byte_for_byte_and_in_order() -> None:
    original = eg_xds.clusters()
    before = [c.SerializeToString(deterministic=True) for c in original]

    result = _add(original)

    assert _cluster_names(result.clusters) == [*_cluster_names(original), ORIGINAL_DST_CLUSTER]
    assert [c.SerializeToString(deterministic=True) for c in result.clusters[:-1]] == before
    # The input list and its messages are not mutated.
    assert [c.SerializeToString(deterministic=True) for c in original] == before
    assert len(original) == 2


def test_idempotent() -> None:
    once = _add(eg_xds.clusters())
    twice = _add(once.clusters)

    assert not twice.changed
    assert twice.added == twice.replaced == twice.removed_duplicates == 0
    assert all(a is b for a, b in zip(once.clusters, twice.clusters, strict=True))


def test_stale_cluster_of_our_name_is_replaced_in_place() -> None:
    stale = original_destination_cluster(header_name="x-old-header", connect_timeout=timedelta(seconds=60))
    clusters = [eg_xds.clusters()[0], stale, eg_xds.clusters()[1]]

    result = _add(clusters)

    assert _cluster_names(result.clusters) == [
        eg_xds.BACKEND_CLUSTER,
        ORIGINAL_DST_CLUSTER,
        eg_xds.PLAIN_CLUSTER,
    ]
    assert result.clusters[1].original_dst_lb_config.http_header_name == ORIGINAL_DST_HEADER
    assert result.clusters[1].connect_timeout.seconds == 10
    assert (result.added, result.replaced) == (0, 1)
    assert stale.original_dst_lb_config.http_header_name == "x-old-header"  # input not mutated


def test_duplicates_of_our_cluster_are_dropped() -> None:
    ours = original_destination_cluster(header_name=ORIGINAL_DST_HEADER, connect_timeout=TEN_S)
    clusters = [ours, *eg_xds.clusters(), copy.deepcopy(ours)]

    result = _add(clusters)

    assert _cluster_names(result.clusters).count(ORIGINAL_DST_CLUSTER) == 1
    assert result.removed_duplicates == 1 and result.added == 0 and result.changed


def test_empty_list_gets_the_cluster() -> None:
    assert _cluster_names(_add([]).clusters) == [ORIGINAL_DST_CLUSTER]


# --- the routes --------------------------------------------------------------------------------------------


def _vh(routes: list[dict[str, Any]] | None = None) -> VirtualHost:
    data = eg_xds.virtual_host_dict()
    if routes is not None:
        data["routes"] = routes
    return json_format.ParseDict(data, VirtualHost())


def _rewrite(vh: VirtualHost, *, timeout: timedelta = timedelta(seconds=60)) -> Any:
    return route_pool_routes_to_original_destination(vh, timeout=timeout, generated=eg_xds.generated())


def _route(vh: VirtualHost, name: str) -> Route:
    (route,) = [r for r in vh.routes if r.name == name]
    return route


def test_pool_route_direct_response_becomes_route_to_the_cluster() -> None:
    vh = _vh()
    before = _route(vh, eg_xds.POOL_ROUTE)

    result = _rewrite(vh, timeout=timedelta(seconds=75))

    after = _route(result.virtual_host, eg_xds.POOL_ROUTE)
    assert after.WhichOneof("action") == "route"
    assert after.route.cluster == ORIGINAL_DST_CLUSTER
    assert after.route.timeout.seconds == 75
    assert not after.HasField("direct_response")
    # Name, match and metadata are the route's own.
    assert after.match == before.match and after.metadata == before.metadata and after.name == before.name
    assert result.rewritten == 1 and result.already_done == 0 and not result.warnings and result.changed


def test_other_routes_and_virtual_host_fields_unchanged_byte_for_byte() -> None:
    vh = _vh()
    input_bytes = vh.SerializeToString(deterministic=True)

    result = _rewrite(vh)

    out = result.virtual_host
    for name in (eg_xds.PLAIN_ROUTE, eg_xds.BACKEND_ROUTE):
        assert _route(out, name).SerializeToString(deterministic=True) == _route(vh, name).SerializeToString(
            deterministic=True
        )
    assert [r.name for r in out.routes] == [r.name for r in vh.routes]
    stripped_in, stripped_out = VirtualHost(), VirtualHost()
    stripped_in.CopyFrom(vh)
    stripped_out.CopyFrom(out)
    del stripped_in.routes[:]
    del stripped_out.routes[:]
    assert stripped_in == stripped_out
    assert vh.SerializeToString(deterministic=True) == input_bytes  # input not mutated


def test_pool_route_with_a_route_action_keeps_its_other_settings() -> None:
    pool = eg_xds.pool_route()
    del pool["direct_response"]
    pool["route"] = {
        "weighted_clusters": {"clusters": [{"name": "httproute/default/llm/rule/1/backend/0", "weight": 1}]},
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "retry_policy": {"retry_on": "connect-failure", "num_retries": 2},
        "timeout": "30s",
    }

    result = _rewrite(_vh([pool]), timeout=timedelta(seconds=90))

    action = result.virtual_host.routes[0].route
    assert action.WhichOneof("cluster_specifier") == "cluster"
    assert action.cluster == ORIGINAL_DST_CLUSTER
    assert action.timeout.seconds == 90
    assert [u.upgrade_type for u in action.upgrade_configs] == ["websocket"]
    assert action.retry_policy.num_retries.value == 2
    assert result.rewritten == 1


def test_routes_idempotent() -> None:
    once = _rewrite(_vh())
    twice = _rewrite(once.virtual_host)

    assert twice.virtual_host is once.virtual_host
    assert twice.rewritten == 0 and twice.already_done == 1 and not twice.changed


def test_changed_timeout_is_applied_again() -> None:
    once = _rewrite(_vh(), timeout=timedelta(seconds=60))
    again = _rewrite(once.virtual_host, timeout=timedelta(seconds=300))

    assert again.rewritten == 1
    assert _route(again.virtual_host, eg_xds.POOL_ROUTE).route.timeout.seconds == 300


def test_zero_timeout_is_written_explicitly() -> None:
    result = _rewrite(_vh(), timeout=timedelta(0))
    route = _route(result.virtual_host, eg_xds.POOL_ROUTE).route
    assert route.HasField("timeout") and route.timeout.seconds == 0


def test_every_pool_route_is_rewritten() -> None:
    second = eg_xds.pool_route()
    second["name"] = "httproute/default/other/rule/0/match/0/*"
    second["match"]["prefix"] = "/v1/"

    result = _rewrite(_vh([eg_xds.plain_route(), eg_xds.pool_route(), second]))

    assert result.rewritten == 2
    assert [r.route.cluster for r in result.virtual_host.routes] == [
        eg_xds.PLAIN_CLUSTER,
        ORIGINAL_DST_CLUSTER,
        ORIGINAL_DST_CLUSTER,
    ]


@pytest.mark.parametrize(
    ("action_key", "action"),
    [
        (None, None),
        ("redirect", {"path_redirect": "/elsewhere"}),
        ("non_forwarding_action", {}),
    ],
)
def test_pool_route_without_a_forwarding_action_is_left_unchanged_with_a_warning(
    action_key: str | None, action: dict[str, Any] | None
) -> None:
    pool = eg_xds.pool_route()
    del pool["direct_response"]
    if action_key is not None:
        pool[action_key] = action
    vh = _vh([pool, eg_xds.backend_route()])

    result = _rewrite(vh)

    assert result.virtual_host is vh
    assert result.rewritten == 0 and not result.changed
    assert len(result.warnings) == 1
    assert eg_xds.POOL_ROUTE in result.warnings[0]
    assert (action_key or "no action") in result.warnings[0]


@pytest.mark.parametrize(
    "matcher",
    [
        {"name": SELECTED_BACKEND_HEADER, "string_match": {"exact": "backend-a.default"}},
        {"name": SELECTED_BACKEND_HEADER, "string_match": {"prefix": ORIGINAL_DST_CLUSTER}},
        {
            "name": SELECTED_BACKEND_HEADER,
            "string_match": {"exact": ORIGINAL_DST_CLUSTER},
            "invert_match": True,
        },
        {"name": "x-other-header", "string_match": {"exact": ORIGINAL_DST_CLUSTER}},
        {"name": SELECTED_BACKEND_HEADER, "present_match": True},
    ],
)
def test_routes_that_do_not_match_exactly_are_not_pool_routes(matcher: dict[str, Any]) -> None:
    pool = eg_xds.pool_route()
    pool["match"]["headers"] = [matcher]
    vh = _vh([pool])

    assert not is_pool_route(vh.routes[0])
    result = _rewrite(vh)
    assert result.virtual_host is vh and result.rewritten == 0 and not result.warnings


@pytest.mark.parametrize(
    "matcher",
    [
        {"name": SELECTED_BACKEND_HEADER, "exact_match": ORIGINAL_DST_CLUSTER},  # deprecated field
        {"name": "X-AI-EG-Selected-Backend", "string_match": {"exact": ORIGINAL_DST_CLUSTER}},
    ],
)
def test_other_spellings_of_the_exact_match_are_pool_routes(matcher: dict[str, Any]) -> None:
    pool = eg_xds.pool_route()
    pool["match"]["headers"] = [{"name": ":authority", "string_match": {"exact": "x"}}, matcher]

    result = _rewrite(_vh([pool]))

    assert result.rewritten == 1
    assert result.virtual_host.routes[0].route.cluster == ORIGINAL_DST_CLUSTER


def test_route_without_match_and_empty_virtual_host_pass_through() -> None:
    vh = _vh([{"name": "no-match", "route": {"cluster": "c"}}])
    assert _rewrite(vh).virtual_host is vh
    empty = VirtualHost()
    result = _rewrite(empty)
    assert result.virtual_host is empty and not result.warnings


# --- only routes our controller generated ------------------------------------------------------------------


def _pool_route_from(name: str, *, namespace: str = "default", kind: str = "HTTPRoute") -> dict[str, Any]:
    route = eg_xds.pool_route()
    route["name"] = f"httproute/{namespace}/{name}/rule/0/match/0/*"
    route["metadata"] = {
        "filter_metadata": {
            "envoy-gateway": {
                "resources": [
                    {
                        "kind": kind,
                        "namespace": namespace,
                        "name": name,
                        # annotations are the author's to write: copying ours proves nothing
                        "annotations": {"aigateway.envoyproxy.io/route-name": "llm"},
                    }
                ]
            }
        }
    }
    return route


@pytest.mark.parametrize(
    ("route", "routes_in_cache"),
    [
        (_pool_route_from("hand-written"), ()),  # no AIGatewayRoute of that name
        (_pool_route_from("llm", namespace="other"), ()),  # our route's name, another namespace
        (_pool_route_from("llm"), (eg_xds.ai_gateway_route(gateway="another-gateway"),)),  # not this Gateway
        (_pool_route_from("llm-7x"), ()),  # not a name our builders give
        (_pool_route_from("llm", kind="GRPCRoute"), ()),
        ({k: v for k, v in eg_xds.pool_route().items() if k != "metadata"}, ()),  # no source recorded
    ],
    ids=["unknown-name", "other-namespace", "other-gateway", "bad-suffix", "other-kind", "no-metadata"],
)
def test_a_pool_route_our_controller_did_not_generate_is_left_alone(
    route: dict[str, Any], routes_in_cache: tuple[dict[str, Any], ...]
) -> None:
    vh = _vh([route])
    result = route_pool_routes_to_original_destination(
        vh, timeout=timedelta(seconds=60), generated=eg_xds.generated(*routes_in_cache)
    )
    assert (result.rewritten, result.foreign) == (0, 1)
    assert result.virtual_host is vh  # untouched: still Envoy Gateway's direct response
    assert "did not generate" in result.warnings[0]


def test_the_second_httproute_of_a_large_aigatewayroute_is_ours() -> None:
    vh = _vh([_pool_route_from("llm-2")])
    result = route_pool_routes_to_original_destination(
        vh, timeout=timedelta(seconds=60), generated=eg_xds.generated()
    )
    assert (result.rewritten, result.foreign) == (1, 0)


def test_route_and_virtual_host_sources_are_read_from_envoy_gateways_metadata() -> None:
    vh = _vh()
    assert route_source(_route(vh, eg_xds.POOL_ROUTE)) == RouteSource(
        kind="HTTPRoute", namespace="default", name="llm"
    )
    assert virtual_host_gateway(vh) == RouteSource(kind="Gateway", namespace="default", name="ai-gateway")
