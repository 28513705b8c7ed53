"""Everything one Gateway's reconcile wants, from one snapshot (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.filterconfig import FilterConfig
from controller.translate.config import build_filter_config, render_filter_config
from controller.translate.names import ObjKey
from controller.translate.resources import (
    Json,
    auth_secret_data,
    build_auth_secret,
    build_config_map,
    build_extension_policy,
    build_extproc_backend,
    build_extproc_deployment,
    build_extproc_service,
    build_host_rewrite_filter,
    build_http_routes,
)
from controller.translate.snapshot import MAX_REQUEUE_SECONDS, BuildOptions, Snapshot, clamp_requeue
from controller.translate.status import BackendResolution, ObjectStatus, Resolution, dns_failures, resolve
from controller.translate.views import SecretUse, key_of, uid


@dataclass(frozen=True, slots=True)
class GatewayBuild:
    """The output of ``build_gateway``.

    - ``filter_config``: the merged config (``uuid`` = its content hash).
    - ``gateway_objects``: objects in the Gateway's namespace labelled ``gateway_labels(gateway)`` (ConfigMap,
      auth Secret, EnvoyExtensionPolicy, and Deployment + Service or, with ``--extproc-address``, an EG
      Backend). The reconcile prunes every other object with those labels.
    - ``http_routes``: one HTTPRoute per AIGatewayRoute; ``filters``: the host-rewrite filter of each
    namespace
      that has routes.
    - ``statuses``: desired conditions of every object in the snapshot.
    - ``dns_failures``: ``(pool, backend, hostname, error)`` per failed lookup, for Warning Events.
    - ``requeue_after``: the smallest TTL of the DNS answers used, clamped to [5 s, 300 s]; ``None`` when no
      hostname is resolved.
    """

    filter_config: FilterConfig | None
    gateway_objects: tuple[Json, ...]
    http_routes: tuple[Json, ...]
    filters: tuple[Json, ...]
    statuses: tuple[ObjectStatus, ...]
    dns_failures: tuple[tuple[ObjKey, ObjKey, str, str], ...]
    requeue_after: float | None


def hostnames_to_resolve(
    snap: Snapshot, options: BuildOptions, resolution: Resolution | None = None
) -> list[str]:
    """The DNS names whose answers the filter config needs: pool members' Service FQDNs and Backend FQDN
    endpoints. Backends reached through their own Envoy cluster are resolved by Envoy, not here."""
    res = resolution if resolution is not None else resolve(snap, options)
    used = {k for r in res.routes for k in r.usable_pools}
    return sorted({h for k in used for m in res.pools[k].members for h in m.hostnames})


def build_gateway(snap: Snapshot, options: BuildOptions) -> GatewayBuild:
    """Desired objects, config and conditions for ``snap.gateway``.

    With no Gateway object, no per-Gateway object is wanted (the reconcile prunes what it owned), but the
    statuses of the objects that named it are still computed, and the HTTPRoutes of routes that still have
    another existing Gateway are still wanted (a route's HTTPRoutes are wanted exactly when nothing keeps it
    from being served and some Gateway of it has its ext_proc attached, whichever of its Gateways builds
    them, so reconciles of different Gateways never undo each other).
    """
    res = resolve(snap, options)
    statuses = tuple(res.statuses(snap))
    failures = tuple(dns_failures(res, snap.dns))
    pool_members: Mapping[ObjKey, tuple[BackendResolution, ...]] = {
        k: tuple(m.backend for m in p.members) for k, p in res.pools.items()
    }
    uids = {key_of(o): uid(o) for o in snap.routes}
    accepted = [r for r in res.routes if not r.accepted and r.attached]
    routes = tuple(
        hr
        for r in accepted
        for hr in build_http_routes(
            r,
            route_uid=uids.get(r.view.key, ""),
            backends=res.backends,
            pool_members=pool_members,
            options=options,
        )
    )
    namespaces = sorted({r.view.key.namespace for r in accepted})
    filters = tuple(build_host_rewrite_filter(namespace=ns) for ns in namespaces)
    if snap.gateway_object is None:
        return GatewayBuild(None, (), routes, filters, statuses, failures, None)
    cfg = build_filter_config(snap, options, res)

    uses: list[SecretUse] = []
    for b in cfg.backends:
        uses.extend(res.backends[_undot(b.name)].secret_uses)
    for p in cfg.pools:
        for m in p.members:
            uses.extend(res.backends[_undot(m.name)].secret_uses)
    auth = auth_secret_data(snap, uses)
    objs: list[Json] = [
        build_config_map(snap, config_yaml=render_filter_config(cfg)),
        build_auth_secret(snap, data=auth),
        build_extension_policy(snap, options),
    ]
    if options.extproc_address is not None:
        objs.append(build_extproc_backend(snap, options))
    else:
        objs.append(build_extproc_deployment(snap, options, routes=[r.view for r in res.routes]))
        objs.append(build_extproc_service(snap))
    used_hosts = hostnames_to_resolve(snap, options, res)
    ttls = [snap.dns[h].ttl for h in used_hosts if h in snap.dns]
    requeue = clamp_requeue(min(ttls)) if ttls else (MAX_REQUEUE_SECONDS if used_hosts else None)
    return GatewayBuild(cfg, tuple(objs), routes, filters, statuses, failures, requeue)


def _undot(dotted: str) -> ObjKey:
    name, _, ns = dotted.rpartition(".")
    return ObjKey(ns, name)


__all__ = ["GatewayBuild", "build_gateway", "hostnames_to_resolve"]
