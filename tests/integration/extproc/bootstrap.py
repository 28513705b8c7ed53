"""A static Envoy bootstrap that puts our ext_proc in front of named backends and an ORIGINAL_DST cluster.

This is the shape the controller's Envoy Gateway config takes, reduced to what a test needs: one cluster per
AIServiceBackend (routed by the selected-backend header) and the original-destination cluster keyed on the
ext_proc's ``ip:port`` header. Shared by the integration tests and ``bench/extproc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aigw.standalone.envoyconfig import credential_headers_to_add
from api import headers as hdr

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_STDERR_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
_ACCESS_FORMAT = (
    "[access] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% "
    "cost=%DYNAMIC_METADATA(io.envoy.ai_gateway)%\n"
)

BUFFER_LIMIT_BYTES = 8 * 1024 * 1024
"""Envoy's per-connection buffer limit: a buffered request body larger than this gets 413."""


def _static_cluster(
    name: str, *, host: str, port: int | Sequence[int], http2: bool = False
) -> dict[str, Any]:
    """A STATIC cluster on ``host`` at one port, or round-robin over several."""
    ports = [port] if isinstance(port, int) else list(port)
    lb_endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": p}}}} for p in ports
    ]
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
        # every in-flight request holds one ext_proc stream: the default 1024 would cap concurrency
        cluster["circuit_breakers"] = {
            "thresholds": [{"max_requests": 100000, "max_pending_requests": 100000}]
        }
    return cluster


def _router_filter() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }


def _ext_proc_filter(*, message_timeout: str = "30s", process_responses: bool = True) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": "ext_proc"}, "timeout": "30s"},
            "failure_mode_allow": False,
            "message_timeout": message_timeout,
            "allow_mode_override": True,
            # Host (:authority) may only be set with allow_all_routing; without it Envoy ignores the mutation
            "mutation_rules": {"allow_all_routing": True},
            # without it Envoy 1.39 silently drops the cost metadata the ext_proc sends
            "metadata_options": {
                "receiving_namespaces": {
                    "untyped": [hdr.METADATA_NAMESPACE, hdr.CREDENTIAL_METADATA_NAMESPACE]
                }
            },
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_header_mode": "SEND" if process_responses else "SKIP",
                "response_body_mode": "BUFFERED" if process_responses else "NONE",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
        },
    }


def _listener(*, port: int, routes: list[dict[str, Any]], filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "gateway",
                            "access_log": [
                                {
                                    "name": "envoy.access_loggers.stderr",
                                    "typed_config": {
                                        "@type": _STDERR_LOG,
                                        "log_format": {
                                            "text_format_source": {"inline_string": _ACCESS_FORMAT}
                                        },
                                    },
                                }
                            ],
                            "route_config": {
                                "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]
                            },
                            "http_filters": [*filters, _router_filter()],
                        },
                    }
                ]
            }
        ],
    }


def gateway_bootstrap(
    *,
    listen_port: int,
    ext_proc_port: int | Sequence[int],
    backends: Mapping[str, int],
    original_dst_header: str = hdr.ORIGINAL_DST_HEADER,
    access_log: bool = True,
    process_responses: bool = True,
    foreign_routes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Envoy + our ext_proc (several ports: one ext_proc process each, round-robin): ``backends`` maps a
    backend name (``name.ns``) to its port on 127.0.0.1. Our routes copy the credential headers from the
    ext_proc's metadata, as the extension server makes them; ``foreign_routes`` (routes someone else attached,
    their clusters among ``backends``) come first, so they outrank ours.

    ``process_responses=False`` skips the response phases (routing only: no usage, costs or error shapes); the
    benchmark uses it to show what usage accounting costs. With ``access_log`` each request is logged to
    Envoy's log with its cluster, upstream host and cost metadata.
    """
    credentials = credential_headers_to_add()
    routes: list[dict[str, Any]] = [dict(r) for r in foreign_routes]
    routes.extend(
        {
            "match": {
                "prefix": "/",
                "headers": [{"name": hdr.SELECTED_BACKEND_HEADER, "string_match": {"exact": name}}],
            },
            "route": {"cluster": name, "timeout": "300s"},
            "request_headers_to_add": credentials,
        }
        for name in backends
    )
    routes.append(
        {
            "match": {
                "prefix": "/",
                "headers": [
                    {"name": hdr.SELECTED_BACKEND_HEADER, "string_match": {"exact": hdr.ORIGINAL_DST_CLUSTER}}
                ],
            },
            "route": {"cluster": hdr.ORIGINAL_DST_CLUSTER, "timeout": "300s"},
            "request_headers_to_add": credentials,
        }
    )
    routes.append(
        {
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                "body": {"inline_string": "no route: the ext_proc selected no backend"},
            },
        }
    )
    clusters = [_static_cluster(name, host="127.0.0.1", port=port) for name, port in backends.items()]
    clusters.append(
        {
            "name": hdr.ORIGINAL_DST_CLUSTER,
            "type": "ORIGINAL_DST",
            "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": "2s",
            "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
            "original_dst_lb_config": {"use_http_header": True, "http_header_name": original_dst_header},
        }
    )
    clusters.append(_static_cluster("ext_proc", host="127.0.0.1", port=ext_proc_port, http2=True))
    listener = _listener(
        port=listen_port, routes=routes, filters=[_ext_proc_filter(process_responses=process_responses)]
    )
    if not access_log:
        listener["filter_chains"][0]["filters"][0]["typed_config"].pop("access_log")
    return {"static_resources": {"listeners": [listener], "clusters": clusters}}


def direct_bootstrap(*, listen_port: int, upstream_port: int) -> dict[str, Any]:
    """Envoy alone, straight to one upstream: the baseline the benchmark compares against."""
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "300s"}}]
    listener = _listener(port=listen_port, routes=routes, filters=[])
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm.pop("access_log")
    return {
        "static_resources": {
            "listeners": [listener],
            "clusters": [_static_cluster("upstream", host="127.0.0.1", port=upstream_port)],
        }
    }
