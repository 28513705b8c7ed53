"""xDS shaped the way Envoy Gateway v1.9.0 translates our resources, for the extension server's tests.

The scenario: Gateway ``default/ai-gateway`` with one HTTP listener on port 80, and the HTTPRoute
``default/llm`` our controller writes for an AIGatewayRoute:

* rule 0 matches ``x-ai-eg-selected-backend: backend-a.default`` and forwards to the Backend ``backend-a``
  (an EDS cluster ``httproute/default/llm/rule/0``, request timeout 120 s);
* rule 1 matches ``x-ai-eg-selected-backend: original_destination_cluster`` and has no backendRefs, which
  Envoy Gateway turns into a 500 direct response: the InferencePool rule;

plus a second, normal HTTPRoute ``default/plain`` (path prefix ``/healthz``, no header match). Field values
follow the shapes in Envoy Gateway's own translator test data (internal/xds/translator/testdata/out/xds-ir):
EDS clusters with ``max_retries: 1024`` circuit breakers and least-request policy, RDS listeners, SDS secrets.
"""

from __future__ import annotations

from typing import Any

# The typed_config payloads below are Any: importing their modules registers the types json_format needs.
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
import envoy.extensions.load_balancing_policies.least_request.v3.least_request_pb2  # noqa: F401
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from google.protobuf import json_format

from api.headers import ORIGINAL_DST_CLUSTER, SELECTED_BACKEND_HEADER
from controller.extensionserver.xds import GatewayFilter, RouteFilter
from controller.gateway.ownership import gateways_with_ai_routes, generated_pool_routes
from controller.runtime.cache import Store

GATEWAY_IR_KEY = "default/ai-gateway"
LISTENER_NAME = "default/ai-gateway/http"
ROUTE_CONFIG_NAME = LISTENER_NAME
VIRTUAL_HOST_NAME = "default/ai-gateway/http/*"
BACKEND_CLUSTER = "httproute/default/llm/rule/0"
PLAIN_CLUSTER = "httproute/default/plain/rule/0"
BACKEND_ROUTE = "httproute/default/llm/rule/0/match/0/*"
POOL_ROUTE = "httproute/default/llm/rule/1/match/0/*"
PLAIN_ROUTE = "httproute/default/plain/rule/0/match/0/*"
BACKEND_HEADER_VALUE = "backend-a.default"

_ADS = {"ads": {}, "resource_api_version": "V3"}


def ai_gateway_route(name: str = "llm", *, gateway: str = "ai-gateway") -> dict[str, Any]:
    """The AIGatewayRoute ``default/<name>`` that HTTPRoute ``default/<name>`` is built from."""
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": {"namespace": "default", "name": name},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}],
            "schema": {"name": "OpenAI"},
            "rules": [],
        },
    }


def _store(routes: tuple[dict[str, Any], ...]) -> Store:
    store = Store()
    for r in routes or (ai_gateway_route(),):
        store.upsert(r)
    return store


def generated(*routes: dict[str, Any]) -> RouteFilter:
    """The controller's RouteFilter over a cache holding ``routes`` (default: ``ai_gateway_route()``)."""
    return generated_pool_routes(_store(routes))


def guarded(*routes: dict[str, Any]) -> GatewayFilter:
    """The controller's GatewayFilter over a cache holding ``routes`` (default: ``ai_gateway_route()``)."""
    return gateways_with_ai_routes(_store(routes))


def _metadata(kind: str, name: str, **extra: str) -> dict[str, Any]:
    return {"filter_metadata": {"envoy-gateway": {"resources": [{"kind": kind, "name": name, **extra}]}}}


def eds_cluster(name: str, *, route: str) -> Cluster:
    """An EDS cluster as Envoy Gateway builds one per HTTPRoute rule."""
    return json_format.ParseDict(
        {
            "name": name,
            "type": "EDS",
            "eds_cluster_config": {"eds_config": _ADS, "service_name": name},
            "connect_timeout": "10s",
            "per_connection_buffer_limit_bytes": 32768,
            "dns_lookup_family": "V4_PREFERRED",
            "common_lb_config": {},
            "ignore_health_on_host_removal": True,
            "circuit_breakers": {"thresholds": [{"max_retries": 1024}]},
            "load_balancing_policy": {
                "policies": [
                    {
                        "typed_extension_config": {
                            "name": "envoy.load_balancing_policies.least_request",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies."
                                "least_request.v3.LeastRequest",
                                "locality_lb_config": {"locality_weighted_lb_config": {}},
                            },
                        }
                    }
                ]
            },
            "metadata": _metadata("HTTPRoute", route, namespace="default"),
        },
        Cluster(),
    )


def clusters() -> list[Cluster]:
    """The clusters of the scenario, in Envoy Gateway's order."""
    return [eds_cluster(BACKEND_CLUSTER, route="llm"), eds_cluster(PLAIN_CLUSTER, route="plain")]


def secrets() -> list[Secret]:
    """One SDS secret (a BackendTLSPolicy CA), as Envoy Gateway sends them."""
    return [
        json_format.ParseDict(
            {
                "name": "policy-btls/default-ca",
                "validation_context": {"trusted_ca": {"inline_bytes": "LS0tLS1CRUdJTi0tLS0tCg=="}},
            },
            Secret(),
        )
    ]


def listeners(*, port: int = 10080) -> list[Listener]:
    """The HTTP listener, with its HTTP connection manager reading routes over RDS."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": f"http-{port}",
        "rds": {
            "config_source": {**_ADS, "initial_fetch_timeout": "0s"},
            "route_config_name": ROUTE_CONFIG_NAME,
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                    "suppress_envoy_headers": True,
                },
            }
        ],
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
        "http2_protocol_options": {
            "max_concurrent_streams": 100,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576,
        },
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "server_header_transformation": "PASS_THROUGH",
    }
    return [
        json_format.ParseDict(
            {
                "name": LISTENER_NAME,
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
                "default_filter_chain": {
                    "name": LISTENER_NAME,
                    "filters": [
                        {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                    ],
                },
                "per_connection_buffer_limit_bytes": 32768,
                "max_connections_to_accept_per_socket_event": 1,
            },
            Listener(),
        )
    ]


def _header_match(value: str) -> dict[str, Any]:
    return {"name": SELECTED_BACKEND_HEADER, "string_match": {"exact": value}}


def backend_route() -> dict[str, Any]:
    """Rule 0: the header names a normal backend; forwards to its cluster."""
    return {
        "name": BACKEND_ROUTE,
        "match": {"prefix": "/", "headers": [_header_match(BACKEND_HEADER_VALUE)]},
        "route": {
            "cluster": BACKEND_CLUSTER,
            "timeout": "120s",
            "upgrade_configs": [{"upgrade_type": "websocket"}],
        },
        "metadata": _metadata("HTTPRoute", "llm", namespace="default"),
    }


def pool_route() -> dict[str, Any]:
    """Rule 1: the InferencePool rule; no backendRefs, so Envoy Gateway answers 500 until we rewrite it."""
    return {
        "name": POOL_ROUTE,
        "match": {"prefix": "/", "headers": [_header_match(ORIGINAL_DST_CLUSTER)]},
        "direct_response": {"status": 500},
        "metadata": _metadata("HTTPRoute", "llm", namespace="default"),
    }


def plain_route() -> dict[str, Any]:
    """A normal HTTPRoute rule without our header."""
    return {
        "name": PLAIN_ROUTE,
        "match": {"prefix": "/healthz"},
        "route": {"cluster": PLAIN_CLUSTER, "upgrade_configs": [{"upgrade_type": "websocket"}]},
        "metadata": _metadata("HTTPRoute", "plain", namespace="default"),
    }


def virtual_host_dict() -> dict[str, Any]:
    """The listener's single virtual host, as a dict (tests derive variants from it)."""
    return {
        "name": VIRTUAL_HOST_NAME,
        "domains": ["*"],
        "metadata": _metadata("Gateway", "ai-gateway", namespace="default", sectionName="http"),
        "routes": [plain_route(), backend_route(), pool_route()],
    }


def route_configurations() -> list[RouteConfiguration]:
    """The listener's route configuration, with its virtual host."""
    return [
        json_format.ParseDict(
            {
                "name": ROUTE_CONFIG_NAME,
                "ignore_port_in_host_matching": True,
                "max_direct_response_body_size_bytes": 1048576,
                "virtual_hosts": [virtual_host_dict()],
            },
            RouteConfiguration(),
        )
    ]
