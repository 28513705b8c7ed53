"""The per-Gateway reconcile: snapshot → DNS → pure builders → apply, prune, status, Events.

One reconcile per Gateway key: every change to any kind ends here (the map functions of ``cache.Caches``).

- **Apply**: server-side apply with field manager ``envoy-ai-gateway`` (``force``), owner references on the
  Gateway (per-Gateway objects) or the AIGatewayRoute (HTTPRoutes). An object is written only when its desired
  content changed: each carries the hash of what we applied (``aigateway.envoyproxy.io/desired-hash``), and it
  is skipped when the cached copy has that hash and still contains every field we set.
- **Prune**: objects labelled as ours and owned by the Gateway that are not wanted any more are deleted (the
  test API server has no garbage collector, and owner references alone would leave them in a real one until
  the Gateway goes). An HTTPRoute is deleted once its AIGatewayRoute is gone.
- **Status**: the conditions of every object in the snapshot, merged by type (``lastTransitionTime`` moves
  only when the status does; ``observedGeneration`` is the generation read). A condition that turns False (or
  changes reason) gets a Warning Event, a log line with the object's key, and
  ``aigw_controller_condition_failures_total{kind,reason}``.
- **DNS**: the pool members' hostnames are resolved first; a failed lookup gives a Warning Event
  ``DNSResolutionFailed`` on the pool and the backend (the config keeps the last known addresses); the Result
  comes back after the smallest TTL, clamped to [5 s, 300 s].
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from api.gatewayapi import GATEWAY
from api.inference import InferencePool
from api.inference_v1 import CONTROLLER_NAME as V1_CONTROLLER_NAME
from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.objects import Obj, ObjKey
from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.cache import IDX_GATEWAY, IDX_OWNER_GATEWAY, IDX_OWNER_ROUTE, Caches
from controller.gateway.extproc_tls import KEYS as EXTPROC_TLS_KEYS
from controller.gateway.extproc_tls import ensure_material
from controller.runtime import (
    APPLY_PATCH,
    ApiError,
    EventRecorder,
    KubeClient,
    Request,
    Result,
    StatusWriter,
    Store,
    is_not_found,
    new_condition,
    set_status_condition,
)
from controller.runtime.conditions import is_stale, remove_status_condition
from controller.translate import (
    BuildOptions,
    GatewayBuild,
    ObjectStatus,
    build_gateway,
    contains,
    hostnames_to_resolve,
    resolve,
    statuses,
)
from controller.translate import names as n
from controller.translate import views as v
from controller.translate.resources import ROUTE_NAME_LABEL

log = logging.getLogger(__name__)

IDX_PARENT_GATEWAY = "parent-gateway"
"""Index of our HTTPRoutes by the Gateways in their parentRefs."""

REJECTED_RETRY = 60.0
"""Seconds before a Gateway with an object the API server rejected is reconciled again (absent other
events)."""

STATUS_CONCURRENCY = 16
"""Status writes in flight at once per reconcile."""

KIND_POOL = InferencePool.KIND_INFO.kind

PRUNED_KINDS = tuple(
    r.kind
    for r in (
        kinds.CONFIGMAPS, kinds.SECRETS, kinds.DEPLOYMENTS, kinds.SERVICES, kinds.ENVOYEXTENSIONPOLICIES,
        kinds.EG_BACKENDS, kinds.CLIENTTRAFFICPOLICIES, kinds.BACKENDTRAFFICPOLICIES,
    )
)  # fmt: skip
"""Kinds of per-Gateway objects, listed by the ``owner-gateway`` index for pruning."""


def _hash(obj: Obj) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(n.DESIRED_HASH_ANNOTATION)


def _route_owner(hr: Obj) -> str:
    """The AIGatewayRoute an HTTPRoute of ours was built from (its owner reference; else its own name)."""
    md = hr.get("metadata") or {}
    for ref in md.get("ownerReferences") or []:
        if ref.get("kind") == kinds.AIGATEWAYROUTES.kind:
            return str(ref.get("name", ""))
    return str(md.get("name", ""))


def _is_ours(obj: Obj) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(n.MANAGED_BY_KEY) == n.MANAGED_BY


@dataclass(frozen=True, slots=True)
class Rejection:
    """An object the API server refused to store: its kind, and the API server's message."""

    kind: str
    message: str


class ControllerMetrics:
    """The AI Gateway controller's own metrics (the framework's are under ``controller_runtime_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.writes = Counter(
            "aigw_controller_api_writes_total",
            "Writes to the API server by kind and verb (apply, delete, status)",
            ["kind", "verb"],
            registry=registry,
        )
        self.condition_failures = Counter(
            "aigw_controller_condition_failures_total",
            "Conditions that turned False (or changed reason), by kind and reason",
            ["kind", "reason"],
            registry=registry,
        )
        self.apply_rejections = Counter(
            "aigw_controller_apply_rejections_total",
            "Desired objects the API server refused (400/422), by kind",
            ["kind"],
            registry=registry,
        )
        self.dns_failures = Counter(
            "aigw_controller_dns_failures_total",
            "Failed lookups of pool member hostnames seen by reconciles (stale answers included)",
            registry=registry,
        )


class GatewayReconciler:
    """See the module docstring. ``owned`` maps each kind we write to the store that caches it."""

    def __init__(
        self,
        *,
        caches: Caches,
        owned: Mapping[str, Store],
        client: KubeClient,
        status: StatusWriter,
        recorder: EventRecorder,
        resolver: DnsResolver,
        options: BuildOptions,
        metrics: ControllerMetrics,
    ) -> None:
        self.caches = caches
        self.owned = owned
        self.client = client
        self.status = status
        self.recorder = recorder
        self.resolver = resolver
        self.options = options
        self.metrics = metrics
        self._tls_issued: dict[ObjKey, dict[str, str]] = {}
        self.status_stores: dict[str, Store] = {
            kinds.AIGATEWAYROUTES.kind: caches.routes,
            kinds.AISERVICEBACKENDS.kind: caches.backends,
            kinds.BACKENDSECURITYPOLICIES.kind: caches.policies,
            kinds.INFERENCEPOOLS.kind: caches.pools,
            kinds.INFERENCEMODELS.kind: caches.models,
            V1_POOL_KIND: caches.v1_pools,
        }

    async def reconcile(self, req: Request) -> Result | None:
        gw = ObjKey(req.namespace, req.name)
        t = [time.perf_counter()]
        snap = await self.caches.fresh_snapshot(lambda: self.caches.snapshot(gw))
        if self.options.extproc_mtls and snap.gateway_object:
            snap = replace(snap, extproc_tls=self._tls_material(gw))
        hosts = hostnames_to_resolve(snap, self.options)
        if hosts:
            snap = replace(snap, dns=await self.resolver.resolve_all(hosts))
        t.append(time.perf_counter())
        build = build_gateway(snap, self.options)
        t.append(time.perf_counter())
        # The Gateway's own objects first (a Deployment must find its ConfigMap; the HTTPRoutes follow the
        # EnvoyExtensionPolicy). If the API server refused the policy, or takes it again after a refusal, the
        # routes' attachment changed: build again (pure and quick) before the HTTPRoutes go out.
        rejected = await self.apply(build.gateway_objects, gw)
        if self._note_policy_refusal(gw, build, rejected):
            snap = replace(snap, refused_policies=self.caches.policy_refusals(snap.gateways))
            build = build_gateway(snap, self.options)
        rejected += await self.apply((*build.filters, *build.http_routes, *build.route_policies), gw)
        await self.prune(gw, build)
        t.append(time.perf_counter())
        await self.write_statuses(build.statuses)
        self._dns_events(build)
        t.append(time.perf_counter())
        if log.isEnabledFor(logging.DEBUG):
            ms = [round((b - a) * 1000, 1) for a, b in itertools.pairwise(t)]
            log.debug("Gateway %s reconciled: snapshot+dns %s ms, build %s ms, apply+prune %s ms, "
                      "status %s ms", gw, *ms)  # fmt: skip
        if rejected:  # a rejection does not heal by retrying at once: come back slowly, the Event says why
            return Result(requeue_after=min(build.requeue_after or REJECTED_RETRY, REJECTED_RETRY))
        if build.requeue_after is not None:
            return Result(requeue_after=build.requeue_after)
        return None

    # --- apply and prune

    def _tls_material(self, gw: ObjKey) -> dict[str, str]:
        """The Gateway's ext_proc TLS material: what its Secrets hold while it is valid, else renewed.

        The last material issued per Gateway is remembered, so that reconciles racing their own Secret's
        arrival in the cache (or its deletion) do not issue new certificates each time."""
        current: dict[str, str] = {}
        for secret, keys in (
            (n.extproc_tls_secret(gw.name), {k: k for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")}),
            (n.extproc_client_secret(gw.name), {"tls.crt": "client.crt", "tls.key": "client.key"}),
        ):
            data = (self.owned[kinds.SECRETS.kind].get(f"{gw.namespace}/{secret}") or {}).get("data") or {}
            for key, as_key in keys.items():
                if key in data:
                    current[as_key] = base64.b64decode(data[key]).decode(errors="replace")
        if len(current) < len(EXTPROC_TLS_KEYS) and gw in self._tls_issued:
            current = self._tls_issued[
                gw
            ]  # issued by an earlier reconcile, not in the cache yet (or deleted)
        name = n.extproc_name(gw.name)
        domain = self.options.cluster_domain.strip(".")
        names = tuple(f"{name}.{gw.namespace}{suffix}" for suffix in (f".svc.{domain}", ".svc", ""))
        material = ensure_material(current, dns_names=(*names, name))
        self._tls_issued[gw] = material
        return material

    def _note_policy_refusal(self, gw: ObjKey, build: GatewayBuild, rejected: list[Rejection]) -> bool:
        """Record whether the API server refused ``gw``'s EnvoyExtensionPolicy (every snapshot reads it, so
        the reconciles of the other Gateways of a route agree); whether that changed."""
        wanted = any(o["kind"] == kinds.ENVOYEXTENSIONPOLICIES.kind for o in build.gateway_objects)
        message = next((r.message for r in rejected if r.kind == kinds.ENVOYEXTENSIONPOLICIES.kind), None)
        before = self.caches.refused_policies.get(gw)
        if wanted and message is not None:
            self.caches.refused_policies[gw] = message
        else:
            self.caches.refused_policies.pop(gw, None)
        return before != self.caches.refused_policies.get(gw)

    async def apply(self, objects: Iterable[Obj], gw: ObjKey) -> list[Rejection]:
        """Apply ``objects`` in order; the objects the API server rejected (400/422), each already reported
        with a Warning Event ``ApplyRejected`` (on the AIGatewayRoute of an HTTPRoute, else on the Gateway), a
        log line and ``aigw_controller_apply_rejections_total{kind}``. Other errors are raised (retried)."""
        rejected: list[Rejection] = []
        for obj in objects:
            try:
                await self.apply_one(obj)
            except ApiError as e:
                if e.status not in (400, 422):
                    raise
                md = obj["metadata"]
                msg = f"the API server rejected {obj['kind']} {md['namespace']}/{md['name']}: {e.message}"
                rejected.append(Rejection(obj["kind"], e.message))
                self.metrics.apply_rejections.labels(obj["kind"]).inc()
                log.error("Gateway %s: %s", gw, msg)
                target = None
                if obj["kind"] == kinds.HTTPROUTES.kind:
                    target = self.caches.routes.get(f"{md['namespace']}/{_route_owner(obj)}")
                target = target or self.caches.gateways.get(str(gw))
                if target is not None:
                    self.recorder.warning(target, "ApplyRejected", msg)
        return rejected

    async def apply_one(self, obj: Obj) -> bool:
        """Server-side apply ``obj`` unless the cached copy already holds it; whether it was written."""
        kind = obj["kind"]
        md = obj["metadata"]
        live = self.owned[kind].get(f"{md['namespace']}/{md['name']}")
        if live is not None and _hash(live) == _hash(obj) and contains(obj, live):
            return False
        await self.client.patch(
            kinds.BY_KIND[kind],
            name=md["name"],
            namespace=md["namespace"],
            body=obj,
            content_type=APPLY_PATCH,
            field_manager=n.FIELD_MANAGER,
            force=True,
        )
        self.metrics.writes.labels(kind, "apply").inc()
        log.info("applied %s %s/%s", kind, md["namespace"], md["name"])
        return True

    async def prune(self, gw: ObjKey, build: GatewayBuild) -> None:
        wanted = {
            (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in build.gateway_objects
        }
        for kind in PRUNED_KINDS:
            for obj in self.owned[kind].by_index(IDX_OWNER_GATEWAY, str(gw)):
                md = obj["metadata"]
                if _is_ours(obj) and (kind, md["namespace"], md["name"]) not in wanted:
                    await self._delete(kind, md["namespace"], md["name"])
        # An HTTPRoute goes when its AIGatewayRoute is gone, or when that route (read by this Gateway) no
        # longer needs it (fewer rules: fewer HTTPRoutes).
        desired = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in build.http_routes}
        mine = {str(v.key_of(r)) for r in self.caches.routes.by_index(IDX_GATEWAY, str(gw))}
        routes_here = set(mine)  # the routes whose policies this Gateway may prune (below)
        for hr in self.owned[kinds.HTTPROUTES.kind].by_index(IDX_PARENT_GATEWAY, str(gw)):
            md = hr["metadata"]
            if not _is_ours(hr):
                continue
            owner = f"{md['namespace']}/{_route_owner(hr)}"
            routes_here.add(owner)
            if owner not in self.caches.routes or (
                owner in mine and (md["namespace"], md["name"]) not in desired
            ):
                await self._delete(kinds.HTTPROUTES.kind, md["namespace"], md["name"])
        # A route's BackendTrafficPolicy goes on the same terms. It names no Gateway (its owner is the
        # AIGatewayRoute), so it is found through the routes this Gateway reads or has HTTPRoutes of: a
        # deleted route's HTTPRoutes go in this same pass, and a policy that outlives them is the garbage
        # collector's (it is owned by the route). The Gateway-level one of earlier versions is pruned by the
        # first loop.
        wanted_policies = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in build.route_policies}
        policies = self.owned[kinds.BACKENDTRAFFICPOLICIES.kind]
        for btp in [p for route in sorted(routes_here) for p in policies.by_index(IDX_OWNER_ROUTE, route)]:
            md = btp["metadata"]
            if not _is_ours(btp) or ROUTE_NAME_LABEL not in (md.get("labels") or {}):
                continue
            owner = f"{md['namespace']}/{_route_owner(btp)}"
            if owner not in self.caches.routes or (
                owner in mine and (md["namespace"], md["name"]) not in wanted_policies
            ):
                await self._delete(kinds.BACKENDTRAFFICPOLICIES.kind, md["namespace"], md["name"])

    async def _delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self.client.delete(kinds.BY_KIND[kind], name=name, namespace=namespace)
        except Exception as e:
            if not is_not_found(e):
                raise
        self.metrics.writes.labels(kind, "delete").inc()
        log.info("pruned %s %s/%s", kind, namespace, name)

    # --- status and events

    async def write_statuses(self, statuses: Iterable[ObjectStatus]) -> None:
        """Write statuses ``STATUS_CONCURRENCY`` at a time (most are no-ops that never reach the server)."""
        sem = asyncio.Semaphore(STATUS_CONCURRENCY)

        async def one(st: ObjectStatus) -> None:
            async with sem:
                await self.write_status(st)

        await asyncio.gather(*(one(st) for st in statuses))

    async def write_status(self, st: ObjectStatus) -> None:
        """Merge ``st`` into the object's status; Warning Events for conditions that turned False."""
        store = self.status_stores[st.kind]
        obj = store.get(str(st.key))
        if obj is None:
            return
        failures: list[tuple[str, str]] = []

        def merge(conditions: list[dict[str, Any]], desired: tuple[Any, ...]) -> None:
            for c in desired:
                if is_stale(conditions, c.type, st.generation):
                    continue
                before = next((x for x in conditions if x.get("type") == c.type), None)
                prev = (before.get("status"), before.get("reason"), before.get("message")) if before else None
                set_status_condition(
                    conditions,
                    new_condition(
                        type=c.type,
                        status=c.status,
                        reason=c.reason,
                        message=c.message,
                        observed_generation=st.generation,
                    ),
                )
                if not c.ok and prev != (c.status, c.reason, c.message):
                    failures.append((c.reason, f"{c.type}: {c.message}"))

        def mutate(status: dict[str, Any]) -> None:
            failures.clear()
            if st.kind == V1_POOL_KIND:
                # other controllers' entries stay as they are; ours are marked by controllerName
                old = status.get("parents") or []
                status["parents"] = [p for p in old if p.get("controllerName") != V1_CONTROLLER_NAME] + (
                    _merged_parents(
                        [p for p in old if p.get("controllerName") == V1_CONTROLLER_NAME], st, merge,
                        parent_ref=lambda gw: {"group": GATEWAY.group, "kind": GATEWAY.kind,
                                               "namespace": gw.namespace, "name": gw.name},
                        extra={"controllerName": V1_CONTROLLER_NAME},
                    )
                )  # fmt: skip
                return
            if st.kind == KIND_POOL:
                status["parent"] = _merged_parents(
                    status.get("parent") or [], st, merge,
                    parent_ref=lambda gw: {"apiVersion": GATEWAY.api_version, "kind": GATEWAY.kind,
                                           "namespace": gw.namespace, "name": gw.name},
                    extra={},
                )  # fmt: skip
                return
            conditions = status.setdefault("conditions", [])
            placeholder = next((c for c in conditions if c.get("type") == "Ready"), None)
            if placeholder is not None and placeholder.get("reason") == "Pending":
                remove_status_condition(conditions, "Ready")  # the InferenceModel CRD's default, never ours
            merge(conditions, st.conditions)

        written = await self.status.update(kinds.BY_KIND[st.kind], obj, mutate)
        if written is None:
            return
        self.metrics.writes.labels(st.kind, "status").inc()
        for reason, message in failures:
            self.metrics.condition_failures.labels(st.kind, reason).inc()
            log.warning("%s %s: %s (%s)", st.kind, st.key, message, reason)
            self.recorder.warning(written, reason, message)

    def _dns_events(self, build: GatewayBuild) -> None:
        for pool, backend, host, error in build.dns_failures:
            self.metrics.dns_failures.inc()
            known = self.resolver.known(host)
            kept = "keeping the last known addresses" if known and known.ips else "no address known"
            msg = f"DNS lookup of {host} failed: {error}; {kept}"
            for kind, key in ((kinds.INFERENCEPOOLS.kind, pool), (kinds.AISERVICEBACKENDS.kind, backend)):
                obj = self.status_stores[kind].get(str(key))
                if obj is not None:
                    log.warning("%s %s: %s", kind, key, msg)
                    self.recorder.warning(obj, "DNSResolutionFailed", msg)


def _merged_parents(
    old: list[dict[str, Any]],
    st: ObjectStatus,
    merge: Callable[[list[dict[str, Any]], tuple[Any, ...]], None],
    *,
    parent_ref: Callable[[ObjKey], dict[str, str]],
    extra: dict[str, str],
) -> list[dict[str, Any]]:
    """A pool's per-Gateway status entries: one per parent of ``st``, each merged into the ``old`` entry of
    the same Gateway, so its conditions keep their transition times."""
    by_gateway = {
        ((p.get("parentRef") or {}).get("namespace"), (p.get("parentRef") or {}).get("name")): p for p in old
    }
    parents = []
    for gw, conds in st.parents:
        conditions = list((by_gateway.get((gw.namespace, gw.name)) or {}).get("conditions") or [])
        merge(conditions, conds)
        parents.append({"parentRef": parent_ref(gw), **extra, "conditions": conditions})
    return parents


class OrphanStatus:
    """The sync function of a kind with status: writes the conditions of an object that no Gateway reads (an
    object some Gateway reads gets them from that Gateway's reconcile).

    InferencePools (both APIs) are always written here too: their parents list every Gateway that reaches
    them, and a route that stops referencing a pool reconciles only its own Gateways, not the others that
    still reach the pool. DNS answers come from the resolver's cache (no lookups), so these conditions agree
    with the Gateway reconciles'.
    """

    def __init__(self, *, kind: str, reconciler: GatewayReconciler) -> None:
        self.kind = kind
        self.gateways = reconciler
        self.store = reconciler.status_stores[kind]
        self.always = kind in (KIND_POOL, V1_POOL_KIND)

    async def reconcile(self, req: Request) -> Result | None:
        obj = self.store.get(req.key)
        if obj is None:
            return None
        caches = self.gateways.caches
        if not self.always and caches.gateways_for(self.kind, obj):
            return None
        snap = await caches.fresh_snapshot(lambda: caches.object_snapshot(self.kind, obj))
        res = resolve(snap, caches.options)
        hosts = {h for p in res.pools.values() for m in p.members for h in m.hostnames}
        known = {h: a for h in hosts if (a := self.gateways.resolver.known(h)) is not None}
        if known:
            snap = replace(snap, dns=known)
            res = resolve(snap, caches.options)
        key = ObjKey(req.namespace, req.name)
        for st in statuses(res):
            if st.kind == self.kind and st.key == key:
                await self.gateways.write_status(st)
        return None


__all__ = ["IDX_GATEWAY", "ControllerMetrics", "GatewayReconciler", "OrphanStatus", "contains"]
