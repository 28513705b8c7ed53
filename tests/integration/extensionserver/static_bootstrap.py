"""Turn the xDS Envoy Gateway would push (after our hooks) into a static Envoy bootstrap, for the real Envoy.

Envoy Gateway serves listeners, routes, clusters, endpoints and secrets over ADS; a static bootstrap has no
ADS, so: every listener's RDS reference is replaced by its route configuration inline, every EDS cluster gets
a STATIC load assignment to a test upstream, secrets go to ``static_resources.secrets``, and the listener
binds to loopback. Everything else is kept as the hooks returned it, so Envoy checks exactly our output.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from google.protobuf import json_format
from google.protobuf.message import Message


def _as_dict(message: Message) -> dict[str, Any]:
    # Through JSON text: MessageToDict leaves OrderedDicts (for Any payloads) that yaml.safe_dump refuses.
    data: dict[str, Any] = json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))
    return data


def _static_cluster(cluster: dict[str, Any], *, host: str, port: int) -> dict[str, Any]:
    out = copy.deepcopy(cluster)
    out.pop("eds_cluster_config", None)
    out["type"] = "STATIC"
    out["load_assignment"] = {
        "cluster_name": out["name"],
        "endpoints": [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                ]
            }
        ],
    }
    return out


def _inline_routes(
    listener: dict[str, Any], *, routes: Mapping[str, dict[str, Any]], port: int
) -> dict[str, Any]:
    out = copy.deepcopy(listener)
    out["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    chains = [out["default_filter_chain"]] if "default_filter_chain" in out else []
    chains += out.get("filter_chains", [])
    for chain in chains:
        for network_filter in chain.get("filters", []):
            hcm = network_filter.get("typed_config", {})
            if "rds" in hcm:
                hcm["route_config"] = routes[hcm.pop("rds")["route_config_name"]]
    return out


def static_bootstrap(
    *,
    clusters: Sequence[Cluster],
    secrets: Sequence[Secret],
    listeners: Sequence[tuple[Listener, int]],
    routes: Sequence[RouteConfiguration],
    eds_endpoints: Mapping[str, tuple[str, int]],
) -> dict[str, Any]:
    """A bootstrap dict: ``listeners`` are ``(listener, loopback port)`` pairs, each resolving its RDS name in
    ``routes``; ``eds_endpoints`` maps every EDS cluster name to the ``(host, port)`` it should reach."""
    route_dicts = {r.name: _as_dict(r) for r in routes}
    cluster_dicts = []
    for cluster in clusters:
        data = _as_dict(cluster)
        if cluster.type == Cluster.EDS:
            host, port = eds_endpoints[cluster.name]
            data = _static_cluster(data, host=host, port=port)
        cluster_dicts.append(data)
    return {
        "node": {"id": "extensionserver-test", "cluster": "default/ai-gateway"},
        "static_resources": {
            "listeners": [
                _inline_routes(_as_dict(lis), routes=route_dicts, port=port) for lis, port in listeners
            ],
            "clusters": cluster_dicts,
            "secrets": [_as_dict(s) for s in secrets],
        },
    }
