"""Wiring: informers, indexes, the Gateway controller and the status sync functions, on a runtime ``Manager``.

``setup_controllers`` composes three parts: ``new_informers`` (informers and cache indexes),
``watch_gateways`` (the Gateway controller's watches) and ``watch_statuses`` (the status controllers).

Controllers:
- ``gateway``: the one reconcile per Gateway (``GatewayReconciler``). It watches every kind it reads, each
  through a map function that follows the cache indexes to the Gateways the object affects
  (``Caches.gateways_for``), and the objects it owns. Status-only updates are filtered out, so writing a
  status never triggers a reconcile.
- ``credential-rotation``: one reconcile per BackendSecurityPolicy (``controller.rotation``), issuing and
  renewing temporary credentials; it watches the policies and the Secrets and ReferenceGrants they read.
- ``<kind>-status`` for AIServiceBackend, BackendSecurityPolicy, InferencePool (both APIs) and
  InferenceModel: the sync functions that validate an object and write its own conditions when no Gateway
  reads it (``OrphanStatus``); otherwise that Gateway's reconcile writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.objects import Obj
from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.cache import (
    IDX_EGBACKEND,
    IDX_EPP_SERVICE,
    IDX_FOREIGN_NS,
    IDX_GATEWAY,
    IDX_OWNER_GATEWAY,
    IDX_OWNER_ROUTE,
    IDX_POLICY,
    IDX_POOL,
    IDX_SECRET,
    IDX_SERVICE,
    Caches,
    httproute_parents,
    model_pools,
    owner_gateways,
    owner_routes,
    route_pools,
    route_v1_pools,
)
from controller.gateway.fetched import FetchedObjects
from controller.gateway.reconciler import (
    IDX_PARENT_GATEWAY,
    ControllerMetrics,
    GatewayReconciler,
    OrphanStatus,
)
from controller.rotation.providers import Endpoints
from controller.rotation.reconciler import RotationMetrics, RotationReconciler
from controller.runtime import (
    EnqueueRequestForObject,
    EnqueueRequestsFromMapFunc,
    Informer,
    KubeClient,
    Manager,
    Request,
    Resource,
    ResourceVersionChangedPredicate,
    Store,
    strip_managed_fields,
)
from controller.translate import BuildOptions, Snapshot
from controller.translate import names as n
from controller.translate import views as v

log = logging.getLogger(__name__)

COMPONENT = "ai-gateway-controller"
"""The Event source (``From`` in ``kubectl describe``)."""


class SpecChanged:
    """Pass creates, deletes, and updates that change anything but status, resourceVersion and
    managedFields."""

    keep_status: ClassVar[bool] = False

    def _strip(self, obj: Obj) -> Obj:
        md = {
            k: x
            for k, x in (obj.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields")
        }
        body = obj if self.keep_status else {k: x for k, x in obj.items() if k != "status"}
        return {**body, "metadata": md}

    def create(self, obj: Obj) -> bool:
        return True

    def update(self, old: Obj, new: Obj) -> bool:
        return self._strip(old) != self._strip(new)

    def delete(self, obj: Obj) -> bool:
        return True


class AnyChange(SpecChanged):
    """Pass every change but a bare resourceVersion or managedFields bump (status changes included)."""

    keep_status = True


def predicate_for(informer: Informer) -> SpecChanged | ResourceVersionChangedPredicate:
    """Which updates of ``informer`` matter: for metadata-only objects every new ``resourceVersion`` (a
    Secret's data changes nothing else they show); Envoy Gateway's verdict on our EnvoyExtensionPolicy is in
    its status, so status changes pass there, and a Pod's readiness too; elsewhere status-only updates are
    dropped."""
    if informer.metadata_only:
        return ResourceVersionChangedPredicate()
    if informer.resource in (kinds.ENVOYEXTENSIONPOLICIES, kinds.PODS):
        return AnyChange()  # Pods: readiness and podIP are status (trimmed by ``trim_pod`` to just those)
    return SpecChanged()


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    options: BuildOptions
    watch_namespace: str | None = None
    concurrent_reconciles: int = 4
    inference_v1: bool = False
    """Serve v1 InferencePools (watch them and Pods): with the inference extension, when the Inference
    Extension's v1 CRD is installed (``controller.main`` checks at start)."""
    inference_objectives: bool = False
    """Read InferenceObjectives (v1 pools' request priorities): with v1 pools, when their CRD is installed."""
    token_endpoints: Endpoints = field(default_factory=Endpoints)
    """Where the credential rotation gets tokens (STS, the Microsoft identity platform)."""


def trim_pod(obj: Obj) -> Obj:
    """A Pod as v1 pool membership reads it (``controller.translate.podpool``): name, namespace, labels,
    deletion, phase, podIP and the Ready condition's status. The informer keeps only this, so Pods cost the
    controller little memory, and only changes to these pass its predicate."""
    md = obj.get("metadata") or {}
    st = obj.get("status") or {}
    ready = [
        {"type": "Ready", "status": c.get("status")}
        for c in st.get("conditions") or []
        if isinstance(c, dict) and c.get("type") == "Ready"
    ]
    keep_md = ("name", "namespace", "labels", "deletionTimestamp", "resourceVersion", "uid", "generation")
    return {
        "apiVersion": kinds.PODS.api_version,
        "kind": kinds.PODS.kind,
        "metadata": {k: md[k] for k in keep_md if k in md},
        "status": {
            **{k: st[k] for k in ("phase", "podIP") if k in st},
            "conditions": ready,
        },
    }


async def missing_crds(
    client: KubeClient, *, inference: bool, resources: Sequence[Resource] = kinds.REQUIRED
) -> list[str]:
    """Names (``<plural>.<group>``) of the CRDs the controller needs that the API server does not serve."""
    wanted = [*resources, *(kinds.INFERENCE if inference else ())]
    served: dict[str, set[str]] = {}
    missing = []
    for r in wanted:
        gv = f"{r.group}/{r.version}"
        if gv not in served:
            try:
                doc = await client.request("GET", f"/apis/{gv}", request_timeout=10.0)
                served[gv] = {str(x.get("name")) for x in doc.get("resources") or []}
            except Exception as e:
                if getattr(e, "status", None) != 404:
                    raise
                served[gv] = set()
        if r.plural not in served[gv]:
            missing.append(f"{r.plural}.{r.group} ({r.version})")
    return missing


def _requests(keys: Any) -> list[Request]:
    return [Request(namespace=k.namespace, name=k.name) for k in keys]


@dataclass(frozen=True, kw_only=True)
class Informers:
    """One informer per kind the controller reads (``pools`` and ``models`` only with the inference
    extension) and per kind it owns (label-selected to ``managed-by``); ``eg_backends`` serves both roles.

    Secrets and Services are followed by metadata only (``secrets``, ``services``: every one, data never
    cached; the builders read full copies of the referenced ones through ``FetchedObjects``), and ours in full
    (``secrets_owned``, ``services_owned``: label-selected), so a cluster's unrelated Secrets (Helm releases,
    up to 1 MiB each) cost the controller their metadata only. No informer keeps ``managedFields``
    (``strip_managed_fields``; Pods keep only what ``trim_pod`` keeps)."""

    gateways: Informer
    routes: Informer
    backends: Informer
    policies: Informer
    secrets: Informer
    services: Informer
    secrets_owned: Informer
    services_owned: Informer
    eg_backends: Informer
    pools: Informer | None
    models: Informer | None
    v1_pools: Informer | None
    pods: Informer | None
    objectives: Informer | None
    configmaps: Informer
    deployments: Informer
    policies_ext: Informer
    client_policies: Informer
    backend_policies: Informer
    httproutes: Informer
    filters: Informer
    grants: Informer

    def owned(self) -> dict[str, Store]:
        """The stores of the kinds a Gateway's reconcile writes and prunes, by kind."""
        return {
            kinds.CONFIGMAPS.kind: self.configmaps.store,
            kinds.SECRETS.kind: self.secrets_owned.store,
            kinds.DEPLOYMENTS.kind: self.deployments.store,
            kinds.SERVICES.kind: self.services_owned.store,
            kinds.ENVOYEXTENSIONPOLICIES.kind: self.policies_ext.store,
            kinds.CLIENTTRAFFICPOLICIES.kind: self.client_policies.store,
            kinds.BACKENDTRAFFICPOLICIES.kind: self.backend_policies.store,
            kinds.EG_BACKENDS.kind: self.eg_backends.store,
            kinds.HTTPROUTES.kind: self.httproutes.store,
            kinds.HTTPROUTEFILTERS.kind: self.filters.store,
        }

    def caches(self, options: BuildOptions, *, client: KubeClient) -> Caches:
        """The read side of the reconcile, over these informers' stores (and GETs of the referenced Secrets
        and Services)."""
        caches = Caches(
            options=options,
            gateways=self.gateways.store,
            routes=self.routes.store,
            backends=self.backends.store,
            policies=self.policies.store,
            secrets=FetchedObjects(client=client, resource=kinds.SECRETS, index=self.secrets.store),
            services=FetchedObjects(client=client, resource=kinds.SERVICES, index=self.services.store),
            eg_backends=self.eg_backends.store,
            grants=self.grants.store,
            extension_policies=self.policies_ext.store,
        )
        if self.pools is not None and self.models is not None:
            caches.pools, caches.models = self.pools.store, self.models.store
        if self.v1_pools is not None and self.pods is not None:
            caches.v1_pools, caches.pods = self.v1_pools.store, self.pods.store
        if self.objectives is not None:
            caches.objectives = self.objectives.store
        return caches


def new_informers(mgr: Manager, *, settings: ControllerSettings) -> Informers:
    """Create every informer on ``mgr`` and register the cache indexes the sync functions follow."""
    ns = settings.watch_namespace
    managed = f"{n.MANAGED_BY_KEY}={n.MANAGED_BY}"
    inference = settings.options.enable_inference_extension
    v1 = inference and settings.inference_v1

    def inf(resource: Resource, *, owned: bool = False, metadata_only: bool = False) -> Informer:
        # Nothing of ours reads managedFields (server-side apply keeps them on the API server; we compare
        # with our own desired objects), and they are often the largest part of a cached object.
        selector = managed if owned else None
        return mgr.informer(
            resource,
            namespace=ns,
            label_selector=selector,
            metadata_only=metadata_only,
            transform=strip_managed_fields,
        )

    infs = Informers(
        gateways=inf(kinds.GATEWAYS),
        routes=inf(kinds.AIGATEWAYROUTES),
        backends=inf(kinds.AISERVICEBACKENDS),
        policies=inf(kinds.BACKENDSECURITYPOLICIES),
        secrets=inf(kinds.SECRETS, metadata_only=True),
        services=inf(kinds.SERVICES, metadata_only=True),
        secrets_owned=inf(kinds.SECRETS, owned=True),
        services_owned=inf(kinds.SERVICES, owned=True),
        eg_backends=inf(kinds.EG_BACKENDS),
        pools=inf(kinds.INFERENCEPOOLS) if inference else None,
        models=inf(kinds.INFERENCEMODELS) if inference else None,
        v1_pools=inf(kinds.V1_INFERENCEPOOLS) if v1 else None,
        pods=mgr.informer(kinds.PODS, namespace=ns, transform=trim_pod) if v1 else None,
        objectives=inf(kinds.INFERENCEOBJECTIVES) if v1 and settings.inference_objectives else None,
        configmaps=inf(kinds.CONFIGMAPS, owned=True),
        deployments=inf(kinds.DEPLOYMENTS, owned=True),
        policies_ext=inf(kinds.ENVOYEXTENSIONPOLICIES, owned=True),
        client_policies=inf(kinds.CLIENTTRAFFICPOLICIES, owned=True),
        backend_policies=inf(kinds.BACKENDTRAFFICPOLICIES, owned=True),
        httproutes=inf(kinds.HTTPROUTES, owned=True),
        filters=inf(kinds.HTTPROUTEFILTERS, owned=True),
        grants=inf(kinds.REFERENCEGRANTS),
    )
    Caches.add_indexes(
        routes=infs.routes.add_indexer,
        backends=infs.backends.add_indexer,
        policies=infs.policies.add_indexer,
        models=infs.models.add_indexer if infs.models is not None else None,
        pools=infs.pools.add_indexer if infs.pools is not None else None,
    )
    if infs.v1_pools is not None:
        Caches.add_v1_indexes(v1_pools=infs.v1_pools.add_indexer)
    if infs.objectives is not None:
        Caches.add_objective_indexes(objectives=infs.objectives.add_indexer)
    for i in (
        infs.configmaps,
        infs.secrets_owned,
        infs.deployments,
        infs.services_owned,
        infs.policies_ext,
        infs.client_policies,
        infs.backend_policies,
        infs.eg_backends,
    ):
        i.add_indexer(IDX_OWNER_GATEWAY, owner_gateways)
    infs.backend_policies.add_indexer(IDX_OWNER_ROUTE, owner_routes)  # the routes' own (the prune)
    infs.httproutes.add_indexer(IDX_PARENT_GATEWAY, httproute_parents)
    return infs


def watch_gateways(
    mgr: Manager,
    *,
    infs: Informers,
    caches: Caches,
    reconciler: GatewayReconciler,
    concurrent_reconciles: int,
) -> None:
    """The ``gateway`` controller: every kind the reconcile reads or owns is mapped, through the cache
    indexes, to the Gateways it affects; status-only updates are dropped."""
    gw_ctrl = mgr.new_controller(
        name="gateway", reconcile=reconciler.reconcile, max_concurrent_reconciles=concurrent_reconciles
    )

    def to_gateways(kind: str) -> Callable[[Obj], list[Request]]:
        return lambda obj: _requests(caches.gateways_for(kind, obj))

    watched: list[tuple[Informer, str]] = [
        (i, i.resource.kind)
        for i in (
            infs.gateways, infs.routes, infs.backends, infs.policies, infs.secrets, infs.services,
            infs.eg_backends, infs.configmaps, infs.deployments, infs.policies_ext, infs.httproutes,
            infs.client_policies, infs.backend_policies, infs.filters,
        )
    ]  # fmt: skip
    if infs.pools is not None and infs.models is not None:
        watched += [(infs.pools, kinds.INFERENCEPOOLS.kind), (infs.models, kinds.INFERENCEMODELS.kind)]
    if infs.v1_pools is not None and infs.pods is not None:
        watched += [(infs.v1_pools, V1_POOL_KIND), (infs.pods, kinds.PODS.kind)]
    if infs.objectives is not None:
        watched.append((infs.objectives, kinds.INFERENCEOBJECTIVES.kind))
    watched.append((infs.grants, kinds.REFERENCEGRANTS.kind))
    # The Secrets and Services we own are also followed by label-selected informers, whose stores the
    # reconcile compares desired objects with. Their events are watched too: a deletion seen first by the
    # metadata-only informer could reconcile against a store still holding the deleted copy, and nothing
    # would bring the reconcile back.
    watched += [(infs.secrets_owned, kinds.SECRETS.kind), (infs.services_owned, kinds.SERVICES.kind)]
    for informer, kind in watched:
        gw_ctrl.watch(informer, EnqueueRequestsFromMapFunc(to_gateways(kind)), predicate_for(informer))


def watch_statuses(mgr: Manager, *, infs: Informers, caches: Caches, reconciler: GatewayReconciler) -> None:
    """The ``<kind>-status`` controllers: each watches its kind and the kinds its conditions depend on, mapped
    back through the cache indexes to the objects to re-check."""
    backends, policies, secrets = infs.backends, infs.policies, infs.secrets

    def status_controller(
        kind: str, informer: Informer
    ) -> Callable[[Informer, Callable[[Obj], list[Obj]]], None]:
        ctrl = mgr.new_controller(
            name=f"{kind.lower()}-status", reconcile=OrphanStatus(kind=kind, reconciler=reconciler).reconcile
        )
        ctrl.watch(informer, EnqueueRequestForObject(), SpecChanged())

        def also(source: Informer, related: Callable[[Obj], list[Obj]]) -> None:
            ctrl.watch(
                source,
                EnqueueRequestsFromMapFunc(lambda o: [Request.for_object(x) for x in related(o)]),
                predicate_for(source),
            )

        return also

    def by(store_index: Callable[[str, str], list[Obj]], index: str) -> Callable[[Obj], list[Obj]]:
        return lambda o: store_index(index, str(v.key_of(o)))

    backend_also = status_controller(kinds.AISERVICEBACKENDS.kind, backends)
    backend_also(infs.services, by(backends.store.by_index, IDX_SERVICE))
    backend_also(infs.eg_backends, by(backends.store.by_index, IDX_EGBACKEND))
    backend_also(policies, by(backends.store.by_index, IDX_POLICY))
    backend_also(infs.grants, caches.backends_granted)
    backend_also(
        secrets,
        lambda o: [b for p in policies.store.by_index(IDX_SECRET, str(v.key_of(o)))
                   for b in backends.store.by_index(IDX_POLICY, str(v.key_of(p)))],
    )  # fmt: skip
    policy_also = status_controller(kinds.BACKENDSECURITYPOLICIES.kind, policies)
    policy_also(secrets, by(policies.store.by_index, IDX_SECRET))
    policy_also(infs.grants, lambda g: policies.store.by_index(IDX_FOREIGN_NS, v.key_of(g).namespace))
    pools, models, routes = infs.pools, infs.models, infs.routes
    if pools is not None and models is not None:
        pool_also = status_controller(kinds.INFERENCEPOOLS.kind, pools)
        pool_also(backends, caches.pools_selecting)
        pool_also(
            infs.grants, lambda g: [p for b in caches.backends_granted(g) for p in caches.pools_selecting(b)]
        )
        # status.parent follows the routes that reference the pool and the Gateways they target
        pool_also(routes, lambda o: [p for k in route_pools(o) if (p := pools.store.get(k)) is not None])
        pool_also(
            infs.gateways,
            lambda o: [p for r in routes.store.by_index(IDX_GATEWAY, str(v.key_of(o)))
                       for k in route_pools(r) if (p := pools.store.get(k)) is not None],
        )  # fmt: skip
        if infs.v1_pools is not None:
            v1_pools = infs.v1_pools
            v1_also = status_controller(V1_POOL_KIND, v1_pools)
            # status.parents follows the routes that name the pool and the Gateways they target
            v1_also(
                routes, lambda o: [p for k in route_v1_pools(o) if (p := v1_pools.store.get(k)) is not None]
            )
            v1_also(
                infs.gateways,
                lambda o: [p for r in routes.store.by_index(IDX_GATEWAY, str(v.key_of(o)))
                           for k in route_v1_pools(r) if (p := v1_pools.store.get(k)) is not None],
            )  # fmt: skip
            # ResolvedRefs follows the endpoint picker's Service
            v1_also(infs.services, by(v1_pools.store.by_index, IDX_EPP_SERVICE))
        model_also = status_controller(kinds.INFERENCEMODELS.kind, models)
        model_also(pools, by(models.store.by_index, IDX_POOL))
        model_also(models, lambda o: [m for k in model_pools(o) for m in models.store.by_index(IDX_POOL, k)])


def watch_rotations(
    mgr: Manager, *, infs: Informers, caches: Caches, endpoints: Endpoints
) -> RotationReconciler:
    """The ``credential-rotation`` controller: a policy is reconciled when it changes, and when a Secret it
    reads or a ReferenceGrant of a namespace it reads from does (its own ``ai-eg-bsp-`` Secret included, so a
    deleted one comes back)."""
    policies = infs.policies

    async def snapshot(obj: Obj) -> Snapshot:
        kind = kinds.BACKENDSECURITYPOLICIES.kind
        return await caches.fresh_snapshot(lambda: caches.object_snapshot(kind, obj))

    rec = RotationReconciler(
        client=mgr.client,
        status=mgr.status,
        recorder=mgr.event_recorder(COMPONENT),
        policies=policies.store,
        policy_resource=kinds.BACKENDSECURITYPOLICIES,
        snapshot=snapshot,
        endpoints=endpoints,
        metrics=RotationMetrics(mgr.metrics.registry),
    )
    ctrl = mgr.new_controller(name="credential-rotation", reconcile=rec.reconcile)
    ctrl.watch(policies, EnqueueRequestForObject(), SpecChanged())

    def policies_of(related: Callable[[Obj], list[Obj]]) -> EnqueueRequestsFromMapFunc:
        return EnqueueRequestsFromMapFunc(lambda o: [Request.for_object(x) for x in related(o)])

    ctrl.watch(
        infs.secrets,
        policies_of(lambda o: policies.store.by_index(IDX_SECRET, str(v.key_of(o)))),
        predicate_for(infs.secrets),
    )
    ctrl.watch(
        infs.grants,
        policies_of(lambda g: policies.store.by_index(IDX_FOREIGN_NS, v.key_of(g).namespace)),
        predicate_for(infs.grants),
    )
    return rec


def setup_controllers(
    mgr: Manager, *, settings: ControllerSettings, resolver: DnsResolver
) -> GatewayReconciler:
    """Register everything on ``mgr`` (before ``mgr.run()``): informers and indexes, the Gateway controller
    and its watches, the status controllers. Returns the Gateway reconciler, for tests and benchmarks."""
    infs = new_informers(mgr, settings=settings)
    caches = infs.caches(settings.options, client=mgr.client)
    reconciler = GatewayReconciler(
        caches=caches,
        owned=infs.owned(),
        client=mgr.client,
        status=mgr.status,
        recorder=mgr.event_recorder(COMPONENT),
        resolver=resolver,
        options=settings.options,
        metrics=ControllerMetrics(mgr.metrics.registry),
    )
    watch_gateways(
        mgr,
        infs=infs,
        caches=caches,
        reconciler=reconciler,
        concurrent_reconciles=settings.concurrent_reconciles,
    )
    watch_statuses(mgr, infs=infs, caches=caches, reconciler=reconciler)
    watch_rotations(mgr, infs=infs, caches=caches, endpoints=settings.token_endpoints)
    return reconciler
