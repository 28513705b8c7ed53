"""Configuration of the extension server: what the hooks write into the xDS, and how the server listens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from api.headers import ORIGINAL_DST_CLUSTER, ORIGINAL_DST_HEADER, SELECTED_BACKEND_HEADER

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=10)
"""Envoy Gateway v1.9.0's own cluster connect timeout (``tcpClusterPerConnectTimeout``)."""

DEFAULT_ROUTE_TIMEOUT = timedelta(seconds=60)
"""Request timeout of the InferencePool routes; the default request timeout of upstream's AIGatewayRoute."""

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest gRPC message we accept or send. Envoy Gateway's own limit defaults to 4 MiB (``maxMessageSize``),
so ours is never the one that cuts a large PostTranslateModify."""

_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+\-.^_`|~]+$")


@dataclass(frozen=True, kw_only=True)
class ExtensionServerOptions:
    """What the hooks put into the xDS. Immutable; validated on construction (ValueError).

    ``original_dst_header``: request header the ORIGINAL_DST cluster reads ``ip:port`` from (set by the
    ext_proc). ``selected_backend_header`` / ``cluster_name``: a route matching this header exactly against
    ``cluster_name`` is an InferencePool route; ``cluster_name`` is also the name of the cluster we add.
    ``connect_timeout``: of the ORIGINAL_DST cluster. ``route_timeout``: written on every InferencePool route
    (``0`` disables the timeout, as in Envoy).
    ``max_message_bytes``: gRPC receive and send limit of the server.
    """

    original_dst_header: str = ORIGINAL_DST_HEADER
    selected_backend_header: str = SELECTED_BACKEND_HEADER
    cluster_name: str = ORIGINAL_DST_CLUSTER
    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT
    route_timeout: timedelta = DEFAULT_ROUTE_TIMEOUT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        for field, value in (
            ("original_dst_header", self.original_dst_header),
            ("selected_backend_header", self.selected_backend_header),
        ):
            # Envoy keeps header names lower-case and matches them that way: a capital would never match.
            if not _HEADER_NAME.match(value):
                raise ValueError(f"{field} must be a lower-case HTTP header name, got {value!r}")
        if not self.cluster_name:
            raise ValueError("cluster_name must not be empty")
        if self.connect_timeout <= timedelta(0):
            raise ValueError(f"connect_timeout must be positive, got {self.connect_timeout}")
        if self.route_timeout < timedelta(0):
            raise ValueError(f"route_timeout must not be negative, got {self.route_timeout}")
        if self.max_message_bytes < 4 * 1024 * 1024:
            raise ValueError("max_message_bytes must be at least 4 MiB, Envoy Gateway's default message size")
