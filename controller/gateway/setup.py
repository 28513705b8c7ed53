"""Wiring: informers, indexes, the Gateway controller and the status sync functions, on a runtime ``Manager``.

Controllers:
- ``gateway``: the one reconcile per Gateway (``GatewayReconciler``). It watches every kind it reads, each
  through a map function that follows the cache indexes to the Gateways the object affects
  (``Caches.gateways_for``), and the objects it owns. Status-only updates are filtered out, so writing a
  status never triggers a reconcile.
- ``<kind>-status`` for AIServiceBackend, BackendSecurityPolicy, InferencePool and InferenceModel: the sync
  functions that validate an object and write its own conditions when no Gateway reads it (``OrphanStatus``);
  otherwise that Gateway's reconcile writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.cache import (
    IDX_EGBACKEND,
    IDX_GATEWAY,
    IDX_OWNER_GATEWAY,
    IDX_POLICY,
    IDX_POOL,
    IDX_SECRET,
    IDX_SERVICE,
    Caches,
    httproute_parents,
    owner_gateways,
    route_pools,
)
from controller.gateway.reconciler import (
    IDX_PARENT_GATEWAY,
    ControllerMetrics,
    GatewayReconciler,
    OrphanStatus,
)
from controller.runtime import (
    CONFIGMAPS,
    DEPLOYMENTS,
    SECRETS,
    SERVICES,
    EnqueueRequestForObject,
    EnqueueRequestsFromMapFunc,
    Informer,
    KubeClient,
    Manager,
    Request,
    Resource,
)
from controller.translate import BuildOptions
from controller.translate import names as n
from controller.translate import views as v
from controller.translate.views import ModelView

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "ai-gateway-controller"
"""The Event source (``From`` in ``kubectl describe``)."""


class SpecChanged:
    """Pass creates, deletes, and updates that change anything but status, resourceVersion and
    managedFields."""

    @staticmethod
    def _strip(obj: Obj) -> Obj:
        md = {
            k: x
            for k, x in (obj.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields")
        }
        return {**{k: x for k, x in obj.items() if k != "status"}, "metadata": md}

    def create(self, obj: Obj) -> bool:
        return True

    def update(self, old: Obj, new: Obj) -> bool:
        return self._strip(old) != self._strip(new)

    def delete(self, obj: Obj) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    options: BuildOptions
    watch_namespace: str | None = None
    concurrent_reconciles: int = 4


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


def setup_controllers(
    mgr: Manager, *, settings: ControllerSettings, resolver: DnsResolver
) -> GatewayReconciler:
    """Register everything on ``mgr`` (before ``mgr.run()``); the Gateway reconciler, for tests and
    benchmarks."""
    options = settings.options
    ns = settings.watch_namespace
    managed = f"{n.MANAGED_BY_KEY}={n.MANAGED_BY}"

    def inf(resource: Resource, *, owned: bool = False) -> Informer:
        return mgr.informer(resource, namespace=ns, label_selector=managed if owned else None)

    gateways, routes = inf(kinds.GATEWAYS), inf(kinds.AIGATEWAYROUTES)
    backends, policies = inf(kinds.AISERVICEBACKENDS), inf(kinds.BACKENDSECURITYPOLICIES)
    secrets, services, eg_backends = inf(SECRETS), inf(SERVICES), inf(kinds.EG_BACKENDS)
    pools = inf(kinds.INFERENCEPOOLS) if options.enable_inference_extension else None
    models = inf(kinds.INFERENCEMODELS) if options.enable_inference_extension else None
    configmaps, deployments = inf(CONFIGMAPS, owned=True), inf(DEPLOYMENTS, owned=True)
    policies_ext = inf(kinds.ENVOYEXTENSIONPOLICIES, owned=True)
    httproutes, filters = inf(kinds.HTTPROUTES, owned=True), inf(kinds.HTTPROUTEFILTERS, owned=True)

    Caches.add_indexes(
        routes=routes.add_indexer,
        backends=backends.add_indexer,
        policies=policies.add_indexer,
        models=models.add_indexer if models is not None else None,
        pools=pools.add_indexer if pools is not None else None,
    )
    for i in (configmaps, secrets, deployments, services, policies_ext, eg_backends):
        i.add_indexer(IDX_OWNER_GATEWAY, owner_gateways)
    httproutes.add_indexer(IDX_PARENT_GATEWAY, httproute_parents)

    caches = Caches(
        options=options,
        gateways=gateways.store,
        routes=routes.store,
        backends=backends.store,
        policies=policies.store,
        secrets=secrets.store,
        services=services.store,
        eg_backends=eg_backends.store,
    )
    if pools is not None and models is not None:
        caches.pools, caches.models = pools.store, models.store
    owned = {
        "ConfigMap": configmaps.store,
        "Secret": secrets.store,
        "Deployment": deployments.store,
        "Service": services.store,
        "EnvoyExtensionPolicy": policies_ext.store,
        "Backend": eg_backends.store,
        "HTTPRoute": httproutes.store,
        "HTTPRouteFilter": filters.store,
    }
    reconciler = GatewayReconciler(
        caches=caches,
        owned=owned,
        client=mgr.client,
        status=mgr.status,
        recorder=mgr.event_recorder(COMPONENT),
        resolver=resolver,
        options=options,
        metrics=ControllerMetrics(mgr.metrics.registry),
    )

    gw_ctrl = mgr.new_controller(
        name="gateway",
        reconcile=reconciler.reconcile,
        max_concurrent_reconciles=settings.concurrent_reconciles,
    )

    def to_gateways(kind: str) -> Callable[[Obj], list[Request]]:
        return lambda obj: _requests(caches.gateways_for(kind, obj))

    watched: list[tuple[Informer, str]] = [
        (gateways, "Gateway"), (routes, "AIGatewayRoute"), (backends, "AIServiceBackend"),
        (policies, "BackendSecurityPolicy"), (secrets, "Secret"), (services, "Service"), (eg_backends,
        "Backend"),
        (configmaps, "ConfigMap"), (deployments, "Deployment"), (policies_ext, "EnvoyExtensionPolicy"),
        (httproutes, "HTTPRoute"),
    ]  # fmt: skip
    if pools is not None and models is not None:
        watched += [(pools, "InferencePool"), (models, "InferenceModel")]
    for informer, kind in watched:
        gw_ctrl.watch(informer, EnqueueRequestsFromMapFunc(to_gateways(kind)), SpecChanged())

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
                SpecChanged(),
            )

        return also

    def by(store_index: Callable[[str, str], list[Obj]], index: str) -> Callable[[Obj], list[Obj]]:
        return lambda o: store_index(index, str(v.key_of(o)))

    backend_also = status_controller("AIServiceBackend", backends)
    backend_also(services, by(backends.store.by_index, IDX_SERVICE))
    backend_also(eg_backends, by(backends.store.by_index, IDX_EGBACKEND))
    backend_also(policies, by(backends.store.by_index, IDX_POLICY))
    backend_also(
        secrets,
        lambda o: [b for p in policies.store.by_index(IDX_SECRET, str(v.key_of(o)))
                   for b in backends.store.by_index(IDX_POLICY, str(v.key_of(p)))],
    )  # fmt: skip
    policy_also = status_controller("BackendSecurityPolicy", policies)
    policy_also(secrets, by(policies.store.by_index, IDX_SECRET))
    if pools is not None and models is not None:
        pool_also = status_controller("InferencePool", pools)
        pool_also(backends, caches.pools_selecting)
        # status.parent follows the routes that reference the pool and the Gateways they target
        pool_also(routes, lambda o: [p for k in route_pools(o) if (p := pools.store.get(k)) is not None])
        pool_also(
            gateways,
            lambda o: [p for r in routes.store.by_index(IDX_GATEWAY, str(v.key_of(o)))
                       for k in route_pools(r) if (p := pools.store.get(k)) is not None],
        )  # fmt: skip
        model_also = status_controller("InferenceModel", models)
        model_also(pools, by(models.store.by_index, IDX_POOL))
        model_also(models, lambda o: models.store.by_index(IDX_POOL, str(ModelView.of(o).pool_key)))
    return reconciler
