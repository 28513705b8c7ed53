"""Pure functions over xDS protos: the original-destination cluster and the InferencePool routes.

No I/O and no logging: each function returns the new xDS together with a small report of what it changed and
what it had to leave alone (``warnings``), and the server logs that. Inputs are never mutated; resources the
functions do not change are returned as the very same message objects, so they serialize byte for byte as they
arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from envoy.config.cluster.v3.circuit_breaker_pb2 import CircuitBreakers
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Metadata, RoutingPriority
from envoy.config.route.v3.route_components_pb2 import HeaderMatcher, Route, RouteAction, VirtualHost
from google.protobuf.duration_pb2 import Duration

from api.headers import ORIGINAL_DST_CLUSTER, SELECTED_BACKEND_HEADER

ENVOY_GATEWAY_MAX_RETRIES = 1024
"""Envoy Gateway v1.9.0 ``buildXdsClusterCircuitBreaker`` (internal/xds/translator/cluster.go) gives every
cluster one DEFAULT-priority threshold with ``max_retries: 1024`` ("the same amount of retries as regular
requests", against retry surges when pods restart) and leaves the other limits at Envoy's defaults (1024)."""


def envoy_gateway_circuit_breakers() -> CircuitBreakers:
    """The circuit breakers Envoy Gateway v1.9.0 sets on its own clusters when no BackendTrafficPolicy asks
    for others."""
    breakers = CircuitBreakers()
    threshold = breakers.thresholds.add()
    threshold.priority = RoutingPriority.DEFAULT
    threshold.max_retries.value = ENVOY_GATEWAY_MAX_RETRIES
    return breakers


def _duration(value: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def original_destination_cluster(
    *, header_name: str, connect_timeout: timedelta, cluster_name: str = ORIGINAL_DST_CLUSTER
) -> Cluster:
    """The ORIGINAL_DST cluster that sends each request to the ``ip:port`` in request header ``header_name``.

    ``lb_policy: CLUSTER_PROVIDED`` (the cluster picks the host itself), no load assignment, no health checks,
    and Envoy Gateway's default circuit breakers.
    """
    cluster = Cluster()
    cluster.name = cluster_name
    cluster.type = Cluster.ORIGINAL_DST
    cluster.lb_policy = Cluster.CLUSTER_PROVIDED
    cluster.connect_timeout.CopyFrom(_duration(connect_timeout))
    cluster.original_dst_lb_config.use_http_header = True
    cluster.original_dst_lb_config.http_header_name = header_name
    cluster.circuit_breakers.CopyFrom(envoy_gateway_circuit_breakers())
    return cluster


@dataclass(frozen=True, kw_only=True)
class ClustersResult:
    """Outcome of ``add_original_destination_cluster``.

    ``clusters``: the full new list. ``added``: 1 when the cluster was appended. ``replaced``: 1 when a
    cluster of that name existed but differed (e.g. another header name) and was overwritten in place.
    ``removed_duplicates``: further clusters of that name dropped, so exactly one remains.
    """

    clusters: list[Cluster]
    added: int = 0
    replaced: int = 0
    removed_duplicates: int = 0

    @property
    def changed(self) -> bool:
        """Whether the list differs from the input."""
        return bool(self.added or self.replaced or self.removed_duplicates)


def add_original_destination_cluster(
    clusters: Sequence[Cluster],
    *,
    header_name: str,
    connect_timeout: timedelta,
    cluster_name: str = ORIGINAL_DST_CLUSTER,
) -> ClustersResult:
    """``clusters`` with exactly one ``cluster_name`` cluster, equal to ``original_destination_cluster(...)``.

    Idempotent: a list that already holds the wanted cluster comes back unchanged (the same objects, in the
    same order). An existing cluster of that name is overwritten in place, later duplicates are dropped, and
    when none exists the cluster is appended. Every other cluster is returned untouched, in order.
    """
    wanted = original_destination_cluster(
        header_name=header_name, connect_timeout=connect_timeout, cluster_name=cluster_name
    )
    out: list[Cluster] = []
    seen = replaced = duplicates = 0
    for cluster in clusters:
        if cluster.name != cluster_name:
            out.append(cluster)
            continue
        seen += 1
        if seen > 1:
            duplicates += 1
        elif cluster == wanted:
            out.append(cluster)
        else:
            replaced += 1
            out.append(wanted)
    added = 0
    if not seen:
        out.append(wanted)
        added = 1
    return ClustersResult(clusters=out, added=added, replaced=replaced, removed_duplicates=duplicates)


def _matches_exactly(matcher: HeaderMatcher, *, header_name: str, value: str) -> bool:
    """Whether ``matcher`` selects requests whose header ``header_name`` equals ``value``.

    Envoy Gateway writes ``string_match.exact``; the deprecated ``exact_match`` is accepted too. An inverted
    matcher selects the opposite, so it never counts.
    """
    if matcher.name.lower() != header_name or matcher.invert_match:
        return False
    kind = matcher.WhichOneof("header_match_specifier")
    if kind == "string_match":
        pattern = matcher.string_match
        return bool(pattern.WhichOneof("match_pattern") == "exact" and pattern.exact == value)
    if kind == "exact_match":
        return bool(matcher.exact_match == value)
    return False


def is_pool_route(
    route: Route, *, header_name: str = SELECTED_BACKEND_HEADER, value: str = ORIGINAL_DST_CLUSTER
) -> bool:
    """Whether ``route`` matches header ``header_name`` exactly against ``value``: an InferencePool route."""
    return any(_matches_exactly(m, header_name=header_name, value=value) for m in route.match.headers)


ENVOY_GATEWAY_METADATA_NAMESPACE = "envoy-gateway"
"""Envoy Gateway v1.9.0 (internal/xds/translator/metadata.go ``buildXdsMetadata``) puts on every xDS route it
translates from a route resource ``metadata.filter_metadata["envoy-gateway"].resources``: a list of one struct
with ``kind``, ``namespace``, ``name`` (and ``annotations`` without its own prefix, ``sectionName``) of the
source object (internal/gatewayapi/route.go ``buildResourceMetadata``)."""


@dataclass(frozen=True, kw_only=True)
class RouteSource:
    """The Kubernetes object an xDS route was translated from, as Envoy Gateway records it."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def _source(metadata: Metadata, *, kind_required: bool) -> RouteSource | None:
    md = metadata.filter_metadata.get(ENVOY_GATEWAY_METADATA_NAMESPACE)
    if md is None or "resources" not in md.fields:
        return None
    resources = md.fields["resources"]
    if resources.WhichOneof("kind") != "list_value" or len(resources.list_value.values) != 1:
        return None
    item = resources.list_value.values[0]
    if item.WhichOneof("kind") != "struct_value":
        return None
    fields = item.struct_value.fields
    kind, namespace, name = (
        fields[k].string_value if k in fields else "" for k in ("kind", "namespace", "name")
    )
    if not namespace or not name or (kind_required and not kind):
        return None
    return RouteSource(kind=kind, namespace=namespace, name=name)


def route_source(route: Route) -> RouteSource | None:
    """The object ``route`` was translated from (an HTTPRoute), from Envoy Gateway's route metadata; None when
    absent or malformed.

    Only kind, namespace and name are read: they are the object's identity. Annotations are whatever the
    route's author wrote, so they prove nothing.
    """
    return _source(route.metadata, kind_required=True)


def virtual_host_gateway(virtual_host: VirtualHost) -> RouteSource | None:
    """The Gateway whose listener holds ``virtual_host`` (Envoy Gateway puts the listener's Gateway in the
    virtual host's metadata, ``buildListenerMetadata``); None when absent. ``kind`` may be empty."""
    return _source(virtual_host.metadata, kind_required=False)


RouteFilter = Callable[[RouteSource | None, RouteSource | None], bool]
"""Whether a pool route may be pointed at the ORIGINAL_DST cluster, given the object it was translated from
and the Gateway of its virtual host (each None when Envoy Gateway recorded none)."""

GatewayFilter = Callable[[RouteSource | None], bool]
"""Whether the Gateway of a virtual host (None when Envoy Gateway recorded none) carries our ext_proc."""


def every_gateway(_gateway: RouteSource | None) -> bool:
    """The GatewayFilter that counts every Gateway as carrying our ext_proc (the conservative default)."""
    return True


@dataclass(frozen=True, kw_only=True)
class VirtualHostResult:
    """Outcome of ``route_pool_routes_to_original_destination``.

    ``virtual_host``: the new virtual host (the input object itself when nothing changed).
    ``rewritten``: pool routes now pointing at the cluster. ``already_done``: pool routes that already did.
    ``foreign``: routes matching the pool header that ``generated`` refused (not made by our controller); left
    unchanged, so the ORIGINAL_DST cluster never serves them. ``warnings``: one message per pool route left
    unchanged, foreign or of an unexpected shape.
    """

    virtual_host: VirtualHost
    rewritten: int = 0
    already_done: int = 0
    foreign: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the virtual host differs from the input."""
        return self.rewritten > 0


def _pool_action(current: Route, *, cluster_name: str, timeout: Duration) -> RouteAction | None:
    """The RouteAction a pool route should have, or None when its action is a shape we do not rewrite.

    A RouteAction keeps everything Envoy Gateway put in it (upgrade configs, retries, hash policy, ...) and
    only gets its cluster specifier and timeout replaced. A direct response is what Envoy Gateway emits for a
    rule with no usable backendRefs (a 500), which is how a pool rule reaches it; it becomes a plain
    RouteAction.
    """
    kind = current.WhichOneof("action")
    if kind == "route":
        action = RouteAction()
        action.CopyFrom(current.route)
    elif kind == "direct_response":
        action = RouteAction()
    else:
        return None
    action.cluster = cluster_name
    action.timeout.CopyFrom(timeout)
    return action


def route_pool_routes_to_original_destination(
    virtual_host: VirtualHost,
    *,
    timeout: timedelta,
    generated: RouteFilter,
    header_name: str = SELECTED_BACKEND_HEADER,
    cluster_name: str = ORIGINAL_DST_CLUSTER,
) -> VirtualHostResult:
    """Point every route that matches ``header_name`` exactly against ``cluster_name`` and that ``generated``
    accepts (by its ``route_source`` and the virtual host's Gateway) at that cluster.

    The ORIGINAL_DST cluster sends a request wherever a header says: only routes of our controller, behind
    our ext_proc (which strips the client's copy of that header), may reach it. A matching route that
    ``generated`` refuses, e.g. a hand-written HTTPRoute on another Gateway, is left as Envoy Gateway made it
    (counted in ``foreign``). Such a route gets ``route.cluster = cluster_name`` and ``route.timeout =
    timeout``; nothing else in the virtual host changes. A matching route with no action, or with a redirect
    or another non-forwarding action, is left as it is and reported in ``warnings``. Idempotent.
    """
    wanted_timeout = _duration(timeout)
    new_routes: dict[int, Route] = {}
    gateway = virtual_host_gateway(virtual_host)
    already = foreign = 0
    warnings: list[str] = []
    for index, route in enumerate(virtual_host.routes):
        if not is_pool_route(route, header_name=header_name, value=cluster_name):
            continue
        source = route_source(route)
        if not generated(source, gateway):
            foreign += 1
            warnings.append(
                f"route {route.name or index!r} in virtual host {virtual_host.name!r} matches "
                f"{header_name}: {cluster_name} but comes from {source or 'an unknown source'} on "
                f"{gateway or 'an unknown Gateway'}, which our controller did not generate; left unchanged"
            )
            continue
        action = _pool_action(route, cluster_name=cluster_name, timeout=wanted_timeout)
        if action is None:
            kind = route.WhichOneof("action") or "no action"
            warnings.append(
                f"route {route.name or index!r} in virtual host {virtual_host.name!r} matches "
                f"{header_name}: {cluster_name} but has {kind}; left unchanged"
            )
            continue
        if route.WhichOneof("action") == "route" and route.route == action:
            already += 1
            continue
        updated = Route()
        updated.CopyFrom(route)
        updated.route.CopyFrom(action)
        new_routes[index] = updated
    return VirtualHostResult(
        virtual_host=with_routes_replaced(virtual_host, new_routes),
        rewritten=len(new_routes),
        already_done=already,
        foreign=foreign,
        warnings=warnings,
    )


def with_routes_replaced(virtual_host: VirtualHost, new_routes: dict[int, Route]) -> VirtualHost:
    """``virtual_host`` with the routes at the indexes of ``new_routes`` replaced; ``virtual_host`` itself
    (not a copy) when there are none."""
    if not new_routes:
        return virtual_host
    out = VirtualHost()
    out.CopyFrom(virtual_host)
    for index, updated in new_routes.items():
        out.routes[index].CopyFrom(updated)
    return out
