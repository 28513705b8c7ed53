"""The Envoy configuration of ``aigw run``: pure functions from what to route to JSON-ready dicts.

Layout (all loopback unless the listen address says otherwise):

* the **bootstrap** (written once, never changes while running): admin, the gateway listener with the ext_proc
  filter and the router, the static ext_proc cluster (HTTP/2), the static original-destination cluster
  (made by the extension server's own function and passed in), and two **filesystem xDS sources**;
* ``cds.yaml``: one cluster per Envoy Gateway ``Backend`` the routes use (STATIC for IPs, STRICT_DNS
  for names, as Envoy Gateway does);
* ``rds.yaml``: the route configuration: one route per backend that matches the selected-backend header
  (``<backend>.<namespace>``) exactly, one that sends ``original_destination_cluster`` to the ORIGINAL_DST
  cluster, and a catch-all that answers 404 when the ext_proc selected nothing.

Envoy watches ``cds.yaml`` and ``rds.yaml`` and applies a file as soon as a new version is renamed into
place, so adding, removing or re-addressing a backend needs neither a restart nor a hot restart: in-flight
requests finish on the clusters they started on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from envoy.config.route.v3.route_components_pb2 import VirtualHost
from google.protobuf import json_format
from google.protobuf.message import Message

from aigw.standalone.loopbacktls import LOOPBACK, LoopbackMTLS
from api import headers
from controller.extensionserver import credentials, xds
from controller.extensionserver.options import ExtensionServerOptions

CDS_FILE = "cds.yaml"
RDS_FILE = "rds.yaml"
ROUTE_CONFIG_NAME = "aigw"
EXTPROC_CLUSTER = "aigw-extproc"
BUFFER_LIMIT_BYTES = 50 * 1024 * 1024
"""Per-connection buffer: a BUFFERED request body must fit, or Envoy answers 413."""

MAX_DOWNSTREAM_CONNECTIONS = 10_000
"""Envoy refuses connections above this (and warns at start when no limit is configured)."""

_DOWNSTREAM_CONNECTIONS_TYPE = (
    "type.googleapis.com/envoy.extensions.resource_monitors."
    "downstream_connections.v3.DownstreamConnectionsConfig"
)
_CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

ACCESS_LOG_FORMAT = (
    "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% -> %RESPONSE_CODE% %RESPONSE_FLAGS% "
    "model=%REQ(x-ai-eg-model)% backend=%REQ(x-ai-eg-selected-backend)% upstream=%UPSTREAM_HOST% "
    "%DURATION%ms cost=%DYNAMIC_METADATA(io.envoy.ai_gateway)%\n"
)


@dataclass(frozen=True, kw_only=True)
class Address:
    """An IP (or, for the listener, any bind address) and a port."""

    host: str
    port: int

    def socket_address(self) -> dict[str, Any]:
        return {"socket_address": {"address": self.host, "port_value": self.port}}


@dataclass(frozen=True, kw_only=True)
class UpstreamTLS:
    """TLS to an upstream: SNI (and the name verified), and whether to verify against the system CA bundle."""

    sni: str
    verify: bool = True


@dataclass(frozen=True, kw_only=True)
class BackendCluster:
    """The Envoy cluster of one Envoy Gateway ``Backend`` (or a Service, which has no endpoints locally)."""

    name: str
    endpoints: tuple[Address, ...]
    """IPs or DNS names (then the cluster is STRICT_DNS and Envoy resolves them, as with Envoy Gateway).
    Empty means Envoy answers 503 ``no healthy upstream``."""
    tls: UpstreamTLS | None = None


@dataclass(frozen=True, kw_only=True)
class HeaderRoute:
    """Requests whose selected-backend header equals ``value`` go to ``cluster``."""

    value: str
    """``<backend>.<namespace>``: the header value the ext_proc writes."""
    cluster: str
    timeout_seconds: float
    auto_host_rewrite: bool = True
    """Send the endpoint's DNS name as ``Host`` (Envoy Gateway's ``urlRewrite.hostname: Backend``)."""


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


@dataclass(frozen=True, kw_only=True)
class ExtProcSettings:
    """The ext_proc filter's settings, as Envoy Gateway derives them from an EnvoyExtensionPolicy."""

    request_body_mode: str = "BUFFERED"
    response_body_mode: str = "BUFFERED"
    request_headers: bool = True
    response_headers: bool = True
    allow_mode_override: bool = True
    message_timeout_seconds: float = 10.0
    writable_namespaces: tuple[str, ...] = (headers.METADATA_NAMESPACE, headers.CREDENTIAL_METADATA_NAMESPACE)
    status_on_error: int | None = None
    """The status of Envoy's own answer when the ext_proc fails (Envoy's default: 500)."""


@dataclass(frozen=True, kw_only=True)
class LocalReplyOverride:
    """An Envoy-generated answer with ``status`` becomes ``new_status`` with ``body`` (Envoy Gateway's
    BackendTrafficPolicy ``responseOverride`` with ``source: Local``), as a local reply mapper."""

    status: int
    new_status: int
    content_type: str
    body: str


def bootstrap(
    *,
    ports: GatewayPorts,
    xds_dir: Path,
    original_dst_cluster: Mapping[str, Any],
    extproc: ExtProcSettings,
    access_log: bool = True,
    buffer_limit_bytes: int = BUFFER_LIMIT_BYTES,
    local_replies: Sequence[LocalReplyOverride] = (),
    extproc_tls: LoopbackMTLS | None = None,
) -> dict[str, Any]:
    """The static bootstrap. ``original_dst_cluster`` is the extension server's cluster as a JSON dict.
    ``buffer_limit_bytes``: the listener's and the ext_proc cluster's per-connection buffer (a
    ClientTrafficPolicy's ``connection.bufferLimit``); ``local_replies``: how Envoy's own answers are
    reshaped; ``extproc_tls``: Envoy reaches the ext_proc over mutual TLS with these files."""
    http_filters: list[dict[str, Any]] = [
        _strip_client_internal_headers(),
        {
            "name": "envoy.filters.http.ext_proc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "grpc_service": {"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}, "timeout": "30s"},
                "failure_mode_allow": False,
                "allow_mode_override": extproc.allow_mode_override,
                # The ext_proc sets Host for pool endpoints named by a hostname.
                "mutation_rules": {"allow_all_routing": True},
                "message_timeout": _duration(extproc.message_timeout_seconds),
                "processing_mode": {
                    "request_header_mode": "SEND" if extproc.request_headers else "SKIP",
                    "request_body_mode": extproc.request_body_mode,
                    "request_trailer_mode": "SKIP",
                    "response_header_mode": "SEND" if extproc.response_headers else "SKIP",
                    "response_body_mode": extproc.response_body_mode,
                    "response_trailer_mode": "SKIP",
                },
                "metadata_options": {"receiving_namespaces": {"untyped": list(extproc.writable_namespaces)}},
                **({"status_on_error": {"code": extproc.status_on_error}} if extproc.status_on_error else {}),
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
        # the ClientTrafficPolicy's http1.http10: HTTP/1.0 clients (ab, ...) are served (refused, the client
        # got an empty reply here: the 426 went through the ext_proc filter and the connection closed first)
        "http_protocol_options": {"accept_http_10": True},
        "rds": {
            "route_config_name": ROUTE_CONFIG_NAME,
            "config_source": _file_source(xds_dir / RDS_FILE),
        },
        "http_filters": http_filters,
    }
    if local_replies:
        hcm["local_reply_config"] = {"mappers": [_local_reply_mapper(r) for r in local_replies]}
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
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _DOWNSTREAM_CONNECTIONS_TYPE,
                        "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
                    },
                }
            ]
        },
        "dynamic_resources": {"cds_config": _file_source(xds_dir / CDS_FILE)},
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": ports.listener.socket_address(),
                    "per_connection_buffer_limit_bytes": buffer_limit_bytes,
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                _extproc_cluster(ports.extproc, buffer_limit_bytes=buffer_limit_bytes, tls=extproc_tls),
                dict(original_dst_cluster),
            ],
        },
    }


def _strip_client_internal_headers() -> dict[str, Any]:
    """A filter ahead of the ext_proc that drops a client's own copies of the headers only the ext_proc may
    set. The ext_proc strips them too, but not from a request it refuses at its headers (no body): Envoy's
    access log would then print the client's model and backend as if the gateway had chosen them."""
    names = (headers.MODEL_NAME_HEADER, *headers.CLIENT_ROUTING_HEADERS)
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": n} for n in names]},
        },
    }


def cds_document(clusters: Sequence[BackendCluster]) -> dict[str, Any]:
    """The ``DiscoveryResponse`` Envoy reads from ``cds.yaml``."""
    return {"resources": [_backend_cluster(c) for c in sorted(clusters, key=lambda c: c.name)]}


def rds_document(routes: Sequence[HeaderRoute], *, pool_timeout_seconds: float) -> dict[str, Any]:
    """The ``DiscoveryResponse`` Envoy reads from ``rds.yaml``: backends, the pool route, a catch-all."""
    out: list[dict[str, Any]] = [
        {
            "name": r.value,
            "match": {"prefix": "/", "headers": [_exact(headers.SELECTED_BACKEND_HEADER, r.value)]},
            "route": {
                "cluster": r.cluster,
                "timeout": _duration(r.timeout_seconds),
                **({"auto_host_rewrite": True} if r.auto_host_rewrite else {}),
            },
        }
        for r in sorted(routes, key=lambda r: r.value)
    ]
    # The pool route as Envoy Gateway emits it for a rule without backendRefs (a 500), then pointed at the
    # ORIGINAL_DST cluster by the extension server's own PostVirtualHostModify function.
    out.append(
        {
            "name": headers.ORIGINAL_DST_CLUSTER,
            "match": {
                "prefix": "/",
                "headers": [_exact(headers.SELECTED_BACKEND_HEADER, headers.ORIGINAL_DST_CLUSTER)],
            },
            "direct_response": {"status": 500},
        }
    )
    out.append(
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
        {"name": "all", "domains": ["*"], "routes": out}, timeout_seconds=pool_timeout_seconds
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
    result = xds.route_pool_routes_to_original_destination(
        proto,
        timeout=timedelta(seconds=timeout_seconds),
        generated=_every_route,  # aigw run writes every route itself, from our builders' HTTPRoutes only
    )
    if result.warnings:  # pragma: no cover - our own pool route always has the expected shape
        raise ValueError("; ".join(result.warnings))
    # and, as the extension server does, the credential headers on every route (all of them are ours here)
    return _to_dict(credentials.route_credentials(result.virtual_host, generated=_every_route).virtual_host)


def credential_headers_to_add() -> list[dict[str, Any]]:
    """The extension server's credential ``request_headers_to_add`` of our routes, as JSON dicts."""
    return [_to_dict(o) for o in credentials.credential_headers_to_add()]


def _every_route(_route: xds.RouteSource | None, _gateway: xds.RouteSource | None) -> bool:
    return True


def _to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def _backend_cluster(c: BackendCluster) -> dict[str, Any]:
    dns = any(not _is_ip(a.host) for a in c.endpoints)
    cluster: dict[str, Any] = {
        "@type": _CLUSTER_TYPE,
        "name": c.name,
        "type": "STRICT_DNS" if dns else "STATIC",
        "connect_timeout": "10s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "load_assignment": {
            "cluster_name": c.name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": a.socket_address(),
                                **({} if _is_ip(a.host) else {"hostname": a.host}),
                            }
                        }
                        for a in c.endpoints
                    ]
                }
            ],
        },
    }
    if dns:
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if c.tls is not None:
        context: dict[str, Any] = {}
        if c.tls.verify:
            ca = next((p for p in SYSTEM_CA_BUNDLES if Path(p).is_file()), SYSTEM_CA_BUNDLES[0])
            context["validation_context"] = {
                "trusted_ca": {"filename": ca},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": c.tls.sni}}],
            }
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": c.tls.sni,
                "common_tls_context": context,
            },
        }
    return cluster


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _local_reply_mapper(r: LocalReplyOverride) -> dict[str, Any]:
    return {
        "filter": {
            "status_code_filter": {
                "comparison": {
                    "op": "EQ",
                    "value": {"default_value": r.status, "runtime_key": f"aigw.local_reply.{r.status}"},
                }
            }
        },
        "status_code": r.new_status,
        # a format string: a literal % would be an operator
        "body_format_override": {
            "text_format_source": {"inline_string": r.body.replace("%", "%%")},
            "content_type": r.content_type,
        },
    }


def _extproc_tls_socket(tls: LoopbackMTLS) -> dict[str, Any]:
    """Envoy's side of the ext_proc's mutual TLS: its client certificate, and the ext_proc's certificate
    verified against the run's CA and its 127.0.0.1 address."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(tls.client_cert)},
                        "private_key": {"filename": str(tls.client_key)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(tls.ca)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "IP_ADDRESS", "matcher": {"exact": LOOPBACK}}
                    ],
                },
            },
        },
    }


def _extproc_cluster(
    address: Address, *, buffer_limit_bytes: int, tls: LoopbackMTLS | None
) -> dict[str, Any]:
    return {
        **({"transport_socket": _extproc_tls_socket(tls)} if tls is not None else {}),
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": buffer_limit_bytes,
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
        # One HTTP/2 connection carries every request's stream: Envoy's default limit of 1024 is too low.
        "circuit_breakers": {"thresholds": [{"max_requests": 100000, "max_pending_requests": 100000}]},
    }


def _file_source(path: Path) -> dict[str, Any]:
    # Envoy watches the file itself and applies it when a new version is renamed onto it.
    return {"resource_api_version": "V3", "path_config_source": {"path": str(path)}}


def _exact(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"
