"""The Envoy configuration of ``aigw run``: pure functions from what to route to JSON-ready dicts.

Layout (all loopback unless the listen address says otherwise):

* the **bootstrap** (written once, never changes while running): admin, the gateway listener with the ext_proc
  filter and the router, the static ext_proc cluster (HTTP/2), the static original-destination cluster
  (made by the extension server's own function and passed in), and two **filesystem xDS sources**;
* ``cds.yaml``: one STATIC cluster per AIServiceBackend, its endpoints already resolved to IPs;
* ``rds.yaml``: the route configuration: one route per backend that matches the selected-backend header
  (``<backend>.<namespace>``) exactly, one that sends ``original_destination_cluster`` to the ORIGINAL_DST
  cluster, and a catch-all that answers 404 when the ext_proc selected nothing.

Envoy watches the directory holding ``cds.yaml``/``rds.yaml`` and applies a file as soon as it is renamed into
place, so adding, removing or re-addressing a backend needs neither a restart nor a hot restart: in-flight
requests finish on the clusters they started on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from envoy.config.route.v3.route_components_pb2 import VirtualHost
from google.protobuf import json_format
from google.protobuf.message import Message

from api import headers
from controller.extensionserver import xds
from controller.extensionserver.options import ExtensionServerOptions

CDS_FILE = "cds.yaml"
RDS_FILE = "rds.yaml"
ROUTE_CONFIG_NAME = "aigw"
EXTPROC_CLUSTER = "aigw-extproc"
BUFFER_LIMIT_BYTES = 50 * 1024 * 1024
"""Per-connection buffer: a BUFFERED request body must fit, or Envoy answers 413."""

_CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

ACCESS_LOG_FORMAT = (
    "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% -> %RESPONSE_CODE% %RESPONSE_FLAGS% "
    "model=%REQ(x-ai-eg-model)% backend=%REQ(x-ai-eg-selected-backend)% upstream=%UPSTREAM_HOST% "
    "%DURATION%ms\n"
)


@dataclass(frozen=True, kw_only=True)
class Address:
    """An IP (or, for the listener, any bind address) and a port."""

    host: str
    port: int

    def socket_address(self) -> dict[str, Any]:
        return {"socket_address": {"address": self.host, "port_value": self.port}}


@dataclass(frozen=True, kw_only=True)
class BackendCluster:
    """The Envoy cluster of one AIServiceBackend."""

    backend: str
    """``<backend>.<namespace>``: the selected-backend header value the ext_proc writes."""
    endpoints: tuple[Address, ...]
    """Resolved IP endpoints; empty means Envoy answers 503 ``no healthy upstream``."""
    host_rewrite: str | None = None
    """``Host`` sent upstream (the hostname the endpoints came from), or None to keep the client's."""
    tls_sni: str | None = None
    """When set, connect with TLS using this SNI (verified against the system CA bundle)."""
    timeout_seconds: float = 300.0

    @property
    def cluster_name(self) -> str:
        return cluster_name(self.backend)


def cluster_name(backend: str) -> str:
    """Envoy cluster name of the backend whose selected-backend header value is ``backend``."""
    return f"backend/{backend}"


@dataclass(frozen=True, kw_only=True)
class GatewayPorts:
    """Where the gateway listens and where it finds the ext_proc."""

    listener: Address
    admin: Address
    extproc: Address


SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def bootstrap(
    *,
    ports: GatewayPorts,
    xds_dir: Path,
    original_dst_cluster: Mapping[str, Any],
    access_log: bool = True,
    extproc_message_timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """The static bootstrap. ``original_dst_cluster`` is the extension server's cluster as a JSON dict."""
    http_filters: list[dict[str, Any]] = [
        {
            "name": "envoy.filters.http.ext_proc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "grpc_service": {"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}, "timeout": "30s"},
                "failure_mode_allow": False,
                "allow_mode_override": True,
                "message_timeout": _duration(extproc_message_timeout_seconds),
                "processing_mode": {
                    "request_header_mode": "SEND",
                    "request_body_mode": "BUFFERED",
                    "request_trailer_mode": "SKIP",
                    "response_header_mode": "SEND",
                    "response_body_mode": "BUFFERED",
                    "response_trailer_mode": "SKIP",
                },
                "metadata_options": {"receiving_namespaces": {"untyped": [headers.METADATA_NAMESPACE]}},
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        },
    ]
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "gateway",
        "rds": {
            "route_config_name": ROUTE_CONFIG_NAME,
            "config_source": _file_source(xds_dir / RDS_FILE, xds_dir=xds_dir),
        },
        "http_filters": http_filters,
    }
    if access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                },
            }
        ]
    return {
        "node": {"id": "aigw-standalone", "cluster": "aigw-standalone"},
        "admin": {"address": ports.admin.socket_address()},
        "dynamic_resources": {"cds_config": _file_source(xds_dir / CDS_FILE, xds_dir=xds_dir)},
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": ports.listener.socket_address(),
                    "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_extproc_cluster(ports.extproc), dict(original_dst_cluster)],
        },
    }


def cds_document(clusters: Sequence[BackendCluster]) -> dict[str, Any]:
    """The ``DiscoveryResponse`` Envoy reads from ``cds.yaml``."""
    return {"resources": [_backend_cluster(c) for c in sorted(clusters, key=lambda c: c.backend)]}


def rds_document(
    clusters: Sequence[BackendCluster], *, pool_timeout_seconds: float = 300.0
) -> dict[str, Any]:
    """The ``DiscoveryResponse`` Envoy reads from ``rds.yaml``: backends, the pool route, a catch-all."""
    routes: list[dict[str, Any]] = [
        {
            "name": c.backend,
            "match": {"prefix": "/", "headers": [_exact(headers.SELECTED_BACKEND_HEADER, c.backend)]},
            "route": {
                "cluster": c.cluster_name,
                "timeout": _duration(c.timeout_seconds),
                **({"host_rewrite_literal": c.host_rewrite} if c.host_rewrite else {}),
            },
        }
        for c in sorted(clusters, key=lambda c: c.backend)
    ]
    # The pool route as Envoy Gateway emits it for a rule without backendRefs (a 500), then pointed at the
    # ORIGINAL_DST cluster by the extension server's own PostVirtualHostModify function.
    routes.append(
        {
            "name": headers.ORIGINAL_DST_CLUSTER,
            "match": {
                "prefix": "/",
                "headers": [_exact(headers.SELECTED_BACKEND_HEADER, headers.ORIGINAL_DST_CLUSTER)],
            },
            "direct_response": {"status": 500},
        }
    )
    routes.append(
        {
            "name": "unreachable",
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                "body": {
                    "inline_string": '{"error":{"message":"no backend selected for this request",'
                    '"type":"invalid_request_error","code":"not_found"}}'
                },
            },
        }
    )
    virtual_host = _pool_routes_to_original_destination(
        {"name": "all", "domains": ["*"], "routes": routes}, timeout_seconds=pool_timeout_seconds
    )
    return {"resources": [{"@type": _ROUTE_TYPE, "name": ROUTE_CONFIG_NAME, "virtual_hosts": [virtual_host]}]}


def original_destination_cluster(*, options: ExtensionServerOptions) -> dict[str, Any]:
    """The extension server's ORIGINAL_DST cluster (same function, same options) as a bootstrap dict."""
    cluster = xds.original_destination_cluster(
        header_name=options.original_dst_header,
        connect_timeout=options.connect_timeout,
        cluster_name=options.cluster_name,
    )
    return _to_dict(cluster)


def _pool_routes_to_original_destination(
    virtual_host: dict[str, Any], *, timeout_seconds: float
) -> dict[str, Any]:
    proto = json_format.ParseDict(virtual_host, VirtualHost())
    result = xds.route_pool_routes_to_original_destination(proto, timeout=timedelta(seconds=timeout_seconds))
    if result.warnings:  # pragma: no cover - our own pool route always has the expected shape
        raise ValueError("; ".join(result.warnings))
    return _to_dict(result.virtual_host)


def _to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def _backend_cluster(c: BackendCluster) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "@type": _CLUSTER_TYPE,
        "name": c.cluster_name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "load_assignment": {
            "cluster_name": c.cluster_name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": a.socket_address()}} for a in c.endpoints]}
            ],
        },
    }
    if c.tls_sni:
        ca = next((p for p in SYSTEM_CA_BUNDLES if Path(p).is_file()), SYSTEM_CA_BUNDLES[0])
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": c.tls_sni,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": ca},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": c.tls_sni}}
                        ],
                    }
                },
            },
        }
    return cluster


def _extproc_cluster(address: Address) -> dict[str, Any]:
    return {
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": EXTPROC_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address.socket_address()}}]}],
        },
    }


def _file_source(path: Path, *, xds_dir: Path) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(xds_dir)}},
    }


def _exact(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"
