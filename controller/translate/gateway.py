"""Everything one Gateway's reconcile wants, from one snapshot (pure).

The flow goes one way: snapshot -> ``resolve`` -> ``Resolution`` -> three independent emitters (``config``:
the filter config; ``resources``: the Kubernetes objects; ``conditions``: every object's conditions).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.filterconfig import FilterConfig
from api.objects import Obj, ObjKey
from controller.translate.conditions import ObjectStatus, statuses
from controller.translate.config import build_filter_config, render_filter_config
from controller.translate.resolve import InvalidCredential, Resolution, dns_failures, resolve
from controller.translate.resources import (
    auth_secret_data,
    build_auth_secret,
    build_client_traffic_policy,
    build_config_map,
    build_extension_policy,
    build_extproc_backend,
    build_extproc_deployment,
    build_extproc_service,
    build_extproc_tls_secrets,
    build_host_rewrite_filter,
    build_http_routes,
    build_route_traffic_policy,
)
from controller.translate.snapshot import MAX_REQUEUE_SECONDS, BuildOptions, Snapshot, clamp_requeue
from controller.translate.views import SecretUse


@dataclass(frozen=True, slots=True)
class GatewayBuild:
    """The output of ``build_gateway``.

    - ``filter_config``: the merged config (``uuid`` = its content hash).
    - ``gateway_objects``: objects in the Gateway's namespace labelled ``gateway_labels(gateway)`` (ConfigMap,
      auth Secret, EnvoyExtensionPolicy, and Deployment + Service or, with ``--extproc-address``, an EG
      Backend). The reconcile prunes every other object with those labels.
    - ``http_routes``: the HTTPRoutes of every accepted AIGatewayRoute; ``filters``: the host-rewrite filter
      of each namespace that has routes; ``route_policies``: the BackendTrafficPolicy of each of those
      AIGatewayRoutes, on its HTTPRoutes.
    - ``statuses``: desired conditions of every object in the snapshot.
    - ``dns_failures``: ``(pool, backend, hostname, error)`` per failed lookup, for Warning Events.
    - ``requeue_after``: the smallest TTL of the DNS answers used, clamped to [5 s, 300 s]; ``None`` when no
      hostname is resolved.
    - ``invalid_credentials``: ``Resolution.invalid_credentials``, the backends left out because a header
      can't carry their key (their conditions say so); for a composer that refuses the whole change instead.
    """

    filter_config: FilterConfig | None
    gateway_objects: tuple[Obj, ...]
    http_routes: tuple[Obj, ...]
    filters: tuple[Obj, ...]
    route_policies: tuple[Obj, ...]
    statuses: tuple[ObjectStatus, ...]
    dns_failures: tuple[tuple[ObjKey, ObjKey, str, str], ...]
    requeue_after: float | None
    invalid_credentials: tuple[tuple[ObjKey, InvalidCredential], ...] = ()


def build_gateway(snap: Snapshot, options: BuildOptions) -> GatewayBuild:
    """Desired objects, config and conditions for ``snap.gateway``.

    With no Gateway object, no per-Gateway object is wanted (the reconcile prunes what it owned), but the
    statuses of the objects that named it are still computed, and the HTTPRoutes of routes that still have
    another existing Gateway are still wanted (a route's HTTPRoutes are wanted exactly when nothing keeps it
    from being served and some Gateway of it has its ext_proc attached, whichever of its Gateways builds
    them, so reconciles of different Gateways never undo each other).
    """
    res = resolve(snap, options)
    accepted = [r for r in res.routes if not r.accepted and r.attached]
    per_route = [
        (r, build_http_routes(r, backends=res.backends, pools=res.pools, options=options)) for r in accepted
    ]
    routes = tuple(hr for _, hrs in per_route for hr in hrs)
    policies = tuple(build_route_traffic_policy(r, http_routes=hrs, options=options) for r, hrs in per_route)
    namespaces = sorted({r.key.namespace for r in accepted})
    filters = tuple(build_host_rewrite_filter(namespace=ns) for ns in namespaces)
    conds = tuple(statuses(res))
    failures = tuple(dns_failures(res, snap.dns))
    invalid = tuple(res.invalid_credentials())
    if snap.gateway_object is None:
        return GatewayBuild(None, (), routes, filters, policies, conds, failures, None, invalid)
    cfg = build_filter_config(res, options)
    auth = auth_secret_data(snap, _secret_uses(res, cfg))
    objs: list[Obj] = [
        build_config_map(snap, config_yaml=render_filter_config(cfg)),
        build_auth_secret(snap, data=auth),
        build_extension_policy(snap, options),
        build_client_traffic_policy(snap, options),
    ]
    if options.extproc_address is None:
        ordered = [r.route for r in res.routes]
        objs.append(build_extproc_deployment(snap, options, routes=ordered))
        objs.append(build_extproc_service(snap))
    if options.extproc_mtls:
        # no material yet (the reconcile adds it): no ext_proc could serve TLS, so no policy either
        if not snap.extproc_tls:
            return GatewayBuild(cfg, (), routes, filters, policies, conds, failures, None, invalid)
        objs += build_extproc_tls_secrets(snap)
    if options.extproc_address is not None or options.extproc_mtls:
        objs.append(build_extproc_backend(snap, options))
    used_hosts = res.used_hostnames()
    ttls = [snap.dns[h].ttl for h in used_hosts if h in snap.dns]
    requeue = clamp_requeue(min(ttls)) if ttls else (MAX_REQUEUE_SECONDS if used_hosts else None)
    return GatewayBuild(cfg, tuple(objs), routes, filters, policies, conds, failures, requeue, invalid)


def _secret_uses(res: Resolution, cfg: FilterConfig) -> list[SecretUse]:
    """The credentials of the backends and pool members the config uses."""
    uses: list[SecretUse] = []
    for b in cfg.backends:
        uses.extend(res.backends[_undot(b.name)].secret_uses)
    for p in cfg.pools:
        if p.serves_any_model:
            continue  # a v1 pool: Pods, no credentials
        for m in p.members:
            uses.extend(res.backends[_undot(m.name)].secret_uses)
    return uses


def _undot(dotted: str) -> ObjKey:
    name, _, ns = dotted.rpartition(".")
    return ObjKey(ns, name)


__all__ = ["GatewayBuild", "build_gateway"]
