"""The controller's view of the cluster: informer stores, their indexes, and snapshot assembly.

Indexes (values are ``namespace/name`` keys):

============================ ==================== ==========================================================
store                        index                maps an object to
============================ ==================== ==========================================================
AIGatewayRoute               ``gateway``          the Gateways its targetRefs name
AIGatewayRoute               ``backend``          the AIServiceBackends its rules reference
AIGatewayRoute               ``pool``             the InferencePools its rules reference
AIServiceBackend             ``service``          its backendRef, when a Service
AIServiceBackend             ``egbackend``        its backendRef, when an Envoy Gateway Backend
AIServiceBackend             ``policy``           its BackendSecurityPolicy
AIServiceBackend             ``label``            each ``key=value`` of its labels
AIServiceBackend             ``foreign-namespace`` its backendRef's namespace, when another one (a grant's)
BackendSecurityPolicy        ``secret``           the Secrets it reads
BackendSecurityPolicy        ``foreign-namespace`` the namespaces of the Secrets it reads in another one
InferenceModel               ``pool``             its poolRef
InferencePool                ``selector``         each ``key=value`` of its selector (``""`` when empty)
AIGatewayRoute               ``v1pool``           the v1 InferencePools (inference.networking.k8s.io) it names
v1 InferencePool             ``selector``         each ``key=value`` of its ``selector.matchLabels``
v1 InferencePool             ``epp-service``      the Service its external ``endpointPickerRef`` names
InferenceObjective           ``pool``             its poolRef, when a v1 InferencePool
owned objects                ``owner-gateway``    the Gateway in its ownerReferences
our BackendTrafficPolicies   ``owner-route``      the AIGatewayRoute in its ownerReferences
============================ ==================== ==========================================================

``gateways_for(kind, obj)`` follows these indexes (and pools' label selectors) from any object to every
Gateway whose reconcile reads it: the map functions of the Gateway controller. ``snapshot(gateway)``
assembles the frozen input of the builders for one Gateway.

The stores hold the API server's JSON; the builders read api models. Each object of a modelled kind is read
into its model (``TopLevelObject.read``: the API server has validated it already) once per version, the first
time an index or a snapshot needs it, and the model is kept beside the object (``Parsed``). An object that
does not fit its model even so (a CRD other than ours) is logged and left out, as if it did not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from api.corev1 import POD, SECRET, SERVICE
from api.envoygateway import HTTP_ROUTE_FILTER, Backend
from api.errors import InvalidObjectError
from api.gatewayapi import GATEWAY, HTTP_ROUTE, REFERENCE_GRANT, referent_key
from api.inference import InferenceModel, InferencePool
from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import Obj, ObjKey, TopLevelObject
from api.shared import BackendKind
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controller.gateway.fetched import FetchedObjects
from controller.runtime import Store
from controller.translate import BuildOptions, Snapshot, extproc_name
from controller.translate import views as v
from controller.translate.epp import epp_service_key
from controller.translate.podpool import selects as pool_selects_pod
from controller.translate.views import objective_pool_key

log = logging.getLogger(__name__)

IDX_GATEWAY = "gateway"
IDX_BACKEND = "backend"
IDX_POOL = "pool"
IDX_SERVICE = "service"
IDX_EGBACKEND = "egbackend"
IDX_POLICY = "policy"
IDX_SECRET = "secret"
IDX_OWNER_GATEWAY = "owner-gateway"
IDX_OWNER_ROUTE = "owner-route"
IDX_SELECTOR = "selector"
IDX_LABEL = "label"
IDX_FOREIGN_NS = "foreign-namespace"
IDX_V1_POOL = "v1pool"
IDX_EPP_SERVICE = "epp-service"

M = TypeVar("M", bound=TopLevelObject)


class Parsed(Generic[M]):
    """The api model of each cached object of one kind, read once per object version.

    The informer replaces an object's dict on every change and never mutates one, so the dict's identity
    stands for its version: one entry per key, valid while it holds that very dict. ``prune`` drops the
    entries of deleted objects.
    """

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._memo: dict[str, tuple[Obj, M | None]] = {}

    def __call__(self, obj: Obj) -> M | None:
        """The model of ``obj``, or None when it does not fit (logged once per version)."""
        md = obj.get("metadata") or {}
        key = f"{md.get('namespace') or ''}/{md.get('name', '')}"
        hit = self._memo.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        try:
            model: M | None = self.model.read(obj)
        except InvalidObjectError as e:
            log.error("ignoring %s: it does not fit the %s API: %s", key, self.model.KIND_INFO.api_version, e)
            model = None
        self._memo[key] = (obj, model)
        return model

    def all(self, objs: Iterable[Obj]) -> list[M]:
        """The models of ``objs`` that fit, in order."""
        return [m for o in objs if (m := self(o)) is not None]

    def size(self) -> int:
        """How many object versions the memo holds."""
        return len(self._memo)

    def prune(self, store: Store) -> None:
        """Forget objects ``store`` no longer holds (amortised: only once the memo has outgrown it)."""
        if len(self._memo) > 2 * len(store) + 1024:
            self._memo = {k: e for k, e in self._memo.items() if store.get(k) is e[0]}


ROUTES = Parsed(AIGatewayRoute)
BACKENDS = Parsed(AIServiceBackend)
POLICIES = Parsed(BackendSecurityPolicy)
POOLS = Parsed(InferencePool)
MODELS = Parsed(InferenceModel)
EG_BACKENDS = Parsed(Backend)
V1_POOLS = Parsed(V1InferencePool)
OBJECTIVES = Parsed(InferenceObjective)


def _keys(keys: Iterable[ObjKey]) -> list[str]:
    return [str(k) for k in keys]


def route_gateways(obj: Obj) -> list[str]:
    r = ROUTES(obj)
    return _keys(v.gateway_keys(r)) if r is not None else []


def route_backends(obj: Obj) -> list[str]:
    r = ROUTES(obj)
    return _keys(v.refs_of_kind(r, BackendKind.AI_SERVICE_BACKEND)) if r is not None else []


def route_pools(obj: Obj) -> list[str]:
    r = ROUTES(obj)
    return _keys(v.refs_of_kind(r, BackendKind.INFERENCE_POOL)) if r is not None else []


def backend_services(obj: Obj) -> list[str]:
    b = BACKENDS(obj)
    if b is None or not v.is_service(b.spec.backend_ref):
        return []
    return [str(referent_key(b.spec.backend_ref, b))]


def backend_eg_backends(obj: Obj) -> list[str]:
    b = BACKENDS(obj)
    if b is None or not v.is_eg_backend(b.spec.backend_ref):
        return []
    return [str(referent_key(b.spec.backend_ref, b))]


def backend_labels(obj: Obj) -> list[str]:
    """``ns/key=value`` for each label."""
    md = obj.get("metadata") or {}
    return [f"{md.get('namespace') or ''}/{a}={b}" for a, b in (md.get("labels") or {}).items()]


def backend_policies(obj: Obj) -> list[str]:
    b = BACKENDS(obj)
    k = v.policy_key(b) if b is not None else None
    return [str(k)] if k is not None else []


def policy_secrets(obj: Obj) -> list[str]:
    p = POLICIES(obj)
    return [str(u.secret) for u in v.secret_uses(p)] if p is not None else []


def backend_foreign_namespaces(obj: Obj) -> list[str]:
    """The backendRef's namespace when it is not the backend's: where a ReferenceGrant must allow it."""
    b = BACKENDS(obj)
    if b is None:
        return []
    ns = referent_key(b.spec.backend_ref, b).namespace
    return [ns] if ns != b.metadata.namespace else []


def policy_foreign_namespaces(obj: Obj) -> list[str]:
    p = POLICIES(obj)
    if p is None:
        return []
    return sorted(
        {u.secret.namespace for u in v.secret_uses(p) if u.secret.namespace != p.metadata.namespace}
    )


def route_v1_pools(obj: Obj) -> list[str]:
    r = ROUTES(obj)
    return _keys(v.v1_pool_refs(r)) if r is not None else []


def objective_pools(obj: Obj) -> list[str]:
    o = OBJECTIVES(obj)
    return _keys([k]) if o is not None and (k := objective_pool_key(o)) is not None else []


def v1_pool_epp_service(obj: Obj) -> list[str]:
    p = V1_POOLS(obj)
    return _keys([k]) if p is not None and (k := epp_service_key(p)) is not None else []


def v1_pool_selector(obj: Obj) -> list[str]:
    p = V1_POOLS(obj)
    if p is None:
        return []
    ns = p.metadata.namespace
    return [f"{ns}/{a}={b}" for a, b in p.spec.selector.match_labels.items()] or [f"{ns}/"]


def pool_selector(obj: Obj) -> list[str]:
    """``ns/key=value`` for each selector pair (``ns/`` for an empty selector, which selects everything)."""
    p = POOLS(obj)
    if p is None:
        return []
    ns = p.metadata.namespace
    return [f"{ns}/{a}={b}" for a, b in p.spec.selector.items()] or [f"{ns}/"]


def model_pools(obj: Obj) -> list[str]:
    m = MODELS(obj)
    return [str(v.pool_key(m))] if m is not None else []


def _owners(obj: Obj, kind: str) -> list[str]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    return [
        f"{ns}/{o.get('name', '')}"
        for o in (obj.get("metadata") or {}).get("ownerReferences") or []
        if o.get("kind") == kind
    ]


def owner_gateways(obj: Obj) -> list[str]:
    """The Gateways in ``obj``'s ownerReferences (``namespace/name``)."""
    return _owners(obj, GATEWAY.kind)


def owner_routes(obj: Obj) -> list[str]:
    """The AIGatewayRoutes in ``obj``'s ownerReferences (``namespace/name``): the owners of a route's
    HTTPRoutes and BackendTrafficPolicy."""
    return _owners(obj, AIGatewayRoute.KIND_INFO.kind)


def httproute_parents(obj: Obj) -> list[str]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    return [
        f"{p.get('namespace') or ns}/{p.get('name', '')}"
        for p in (obj.get("spec") or {}).get("parentRefs") or []
        if p.get("kind", GATEWAY.kind) == GATEWAY.kind
    ]


def _selector_candidates(pools: Store, member: Obj) -> list[Obj]:
    """The pools of ``member``'s namespace indexed (``selector``) under one of its labels, or with an empty
    selector: a superset of the pools selecting it, which the caller checks."""
    k = v.key_of(member)
    lbl = (member.get("metadata") or {}).get("labels") or {}
    candidates: dict[str, Obj] = {}
    for value in [f"{k.namespace}/", *(f"{k.namespace}/{a}={b}" for a, b in lbl.items())]:
        for p in pools.by_index(IDX_SELECTOR, value):
            candidates[str(v.key_of(p))] = p
    return list(candidates.values())


def _store_with(*indexes: str) -> Store:
    st = Store()
    for index in indexes:
        st.add_indexer(index, lambda o: [])
    return st


@dataclass
class Caches:
    """The stores the controller reads. ``pools`` and ``models`` are empty without the inference extension."""

    options: BuildOptions
    gateways: Store
    routes: Store
    backends: Store
    policies: Store
    secrets: Store | FetchedObjects
    """Read by key only (``get``): full copies of the referenced Secrets (see ``fresh_snapshot``)."""
    services: Store | FetchedObjects
    """Likewise for Services."""
    eg_backends: Store
    pools: Store = field(default_factory=lambda: _store_with(IDX_SELECTOR))
    models: Store = field(default_factory=lambda: _store_with(IDX_POOL))
    grants: Store = field(default_factory=Store)
    """ReferenceGrants."""
    extension_policies: Store = field(default_factory=Store)
    """Our EnvoyExtensionPolicies (one per Gateway, in its namespace), with Envoy Gateway's status."""
    refused_policies: dict[ObjKey, str] = field(default_factory=dict)
    """Gateway → the API server's message, for each Gateway whose EnvoyExtensionPolicy was refused at the last
    attempt (the reconcile keeps it; every snapshot reads it)."""
    v1_pools: Store = field(default_factory=lambda: _store_with(IDX_SELECTOR, IDX_EPP_SERVICE))
    """v1 InferencePools; empty unless their CRD is installed (and the inference extension is on)."""
    pods: Store = field(default_factory=Store)
    """Pods (trimmed to what membership needs), likewise."""
    objectives: Store = field(default_factory=lambda: _store_with(IDX_POOL))
    """InferenceObjectives; empty unless their CRD is installed too."""

    @staticmethod
    def add_indexes(
        *,
        routes: Callable[[str, Callable[[Obj], Iterable[str]]], None],
        backends: Callable[[str, Callable[[Obj], Iterable[str]]], None],
        policies: Callable[[str, Callable[[Obj], Iterable[str]]], None],
        models: Callable[[str, Callable[[Obj], Iterable[str]]], None] | None,
        pools: Callable[[str, Callable[[Obj], Iterable[str]]], None] | None,
    ) -> None:
        """Register the indexes on the informers (pass each informer's ``add_indexer``)."""
        routes(IDX_GATEWAY, route_gateways)
        routes(IDX_BACKEND, route_backends)
        routes(IDX_POOL, route_pools)
        backends(IDX_SERVICE, backend_services)
        backends(IDX_EGBACKEND, backend_eg_backends)
        backends(IDX_POLICY, backend_policies)
        backends(IDX_LABEL, backend_labels)
        backends(IDX_FOREIGN_NS, backend_foreign_namespaces)
        policies(IDX_SECRET, policy_secrets)
        policies(IDX_FOREIGN_NS, policy_foreign_namespaces)
        if models is not None:
            models(IDX_POOL, model_pools)
        if pools is not None:
            pools(IDX_SELECTOR, pool_selector)
        routes(IDX_V1_POOL, route_v1_pools)

    @staticmethod
    def add_v1_indexes(*, v1_pools: Callable[[str, Callable[[Obj], Iterable[str]]], None]) -> None:
        """Register the v1 pool indexes (pass the v1 InferencePool informer's ``add_indexer``)."""
        v1_pools(IDX_SELECTOR, v1_pool_selector)
        v1_pools(IDX_EPP_SERVICE, v1_pool_epp_service)

    @staticmethod
    def add_objective_indexes(*, objectives: Callable[[str, Callable[[Obj], Iterable[str]]], None]) -> None:
        """Register the InferenceObjective index (pass its informer's ``add_indexer``)."""
        objectives(IDX_POOL, objective_pools)

    # --- from any object to the Gateways it affects

    def gateways_of_routes(self, routes: Iterable[Obj]) -> set[ObjKey]:
        return {k for r in ROUTES.all(routes) for k in v.gateway_keys(r)}

    def pools_selecting(self, backend: Obj) -> list[Obj]:
        """The pools of the backend's namespace whose selector matches its labels (through ``selector``)."""
        lbl = (backend.get("metadata") or {}).get("labels") or {}
        candidates = _selector_candidates(self.pools, backend)
        return [p for p in candidates if (m := POOLS(p)) is not None and m.selects(lbl)]

    def backends_selected(self, pool: InferencePool) -> list[Obj]:
        """The AIServiceBackends a pool selects (through ``label``: the objects carrying its first pair)."""
        ns = pool.metadata.namespace
        if not pool.spec.selector:
            return self.backends.list(ns)
        first = min(pool.spec.selector.items())
        candidates = self.backends.by_index(IDX_LABEL, f"{ns}/{first[0]}={first[1]}")
        return [b for b in candidates if pool.selects((b.get("metadata") or {}).get("labels") or {})]

    def v1_pools_selecting(self, pod: Obj) -> list[Obj]:
        """The v1 pools of the Pod's namespace whose selector matches its labels (through ``selector``)."""
        candidates = _selector_candidates(self.v1_pools, pod)
        return [p for p in candidates if (m := V1_POOLS(p)) is not None and pool_selects_pod(m, pod)]

    def gateways_for_v1_pool_key(self, pool: ObjKey) -> set[ObjKey]:
        return self.gateways_of_routes(self.routes.by_index(IDX_V1_POOL, str(pool)))

    def gateways_for_pool_key(self, pool: ObjKey) -> set[ObjKey]:
        return self.gateways_of_routes(self.routes.by_index(IDX_POOL, str(pool)))

    def gateways_for_backend(self, backend: Obj) -> set[ObjKey]:
        k = v.key_of(backend)
        out = self.gateways_of_routes(self.routes.by_index(IDX_BACKEND, str(k)))
        for p in self.pools_selecting(backend):
            out |= self.gateways_for_pool_key(v.key_of(p))
        return out

    def gateways_for_backends(self, backends: Iterable[Obj]) -> set[ObjKey]:
        out: set[ObjKey] = set()
        for b in backends:
            out |= self.gateways_for_backend(b)
        return out

    def gateways_for(self, kind: str, obj: Obj) -> set[ObjKey]:
        """Every Gateway whose reconcile reads ``obj`` (of ``kind``), through the indexes."""
        key = str(v.key_of(obj))
        if kind == GATEWAY.kind:
            return {v.key_of(obj)}
        if kind == AIGatewayRoute.KIND_INFO.kind:
            return self.gateways_of_routes([obj])
        if kind == AIServiceBackend.KIND_INFO.kind:
            return self.gateways_for_backend(obj)
        if kind == BackendSecurityPolicy.KIND_INFO.kind:
            return self.gateways_for_backends(self.backends.by_index(IDX_POLICY, key))
        owners = {ObjKey.parse(g) for g in owner_gateways(obj)}
        if kind == SECRET.kind:
            out: set[ObjKey] = set()
            for p in self.policies.by_index(IDX_SECRET, key):
                out |= self.gateways_for_backends(self.backends.by_index(IDX_POLICY, str(v.key_of(p))))
            return out | owners
        if kind == SERVICE.kind:
            out = self.gateways_for_backends(self.backends.by_index(IDX_SERVICE, key)) | owners
            for p in self.v1_pools.by_index(IDX_EPP_SERVICE, key):
                out |= self.gateways_for_v1_pool_key(v.key_of(p))
            return out
        if kind == Backend.KIND_INFO.kind:
            return self.gateways_for_backends(self.backends.by_index(IDX_EGBACKEND, key)) | owners
        if kind == InferencePool.KIND_INFO.kind:
            return self.gateways_for_pool_key(v.key_of(obj))
        if kind == InferenceModel.KIND_INFO.kind:
            return {g for p in model_pools(obj) for g in self.gateways_for_pool_key(ObjKey.parse(p))}
        if kind == V1_POOL_KIND:
            return self.gateways_for_v1_pool_key(v.key_of(obj))
        if kind == InferenceObjective.KIND_INFO.kind:
            return {g for p in objective_pools(obj) for g in self.gateways_for_v1_pool_key(ObjKey.parse(p))}
        if kind == POD.kind:
            return {
                g for p in self.v1_pools_selecting(obj) for g in self.gateways_for_v1_pool_key(v.key_of(p))
            }
        if kind == HTTP_ROUTE.kind:
            return {ObjKey.parse(g) for g in httproute_parents(obj)}
        if kind == REFERENCE_GRANT.kind:
            return self.gateways_for_backends(self.backends_granted(obj))
        if kind == HTTP_ROUTE_FILTER.kind:  # ours is shared by the HTTPRoutes of its namespace
            return self.gateways_of_routes(self.routes.list(v.key_of(obj).namespace))
        # An object an AIGatewayRoute owns (its BackendTrafficPolicy) matters to that route's Gateways: a
        # deleted or edited one is put back by their reconcile at once.
        return owners | self.gateways_of_routes(
            r for k in owner_routes(obj) if (r := self.routes.get(k)) is not None
        )

    def backends_granted(self, grant: Obj) -> list[Obj]:
        """The AIServiceBackends that refer into the grant's namespace, directly or through their policy: the
        objects whose status a grant may change."""
        ns = v.key_of(grant).namespace
        out = {str(v.key_of(b)): b for b in self.backends.by_index(IDX_FOREIGN_NS, ns)}
        for p in self.policies.by_index(IDX_FOREIGN_NS, ns):
            out.update((str(v.key_of(b)), b) for b in self.backends.by_index(IDX_POLICY, str(v.key_of(p))))
        return list(out.values())

    # --- snapshots

    async def fresh_snapshot(self, take: Callable[[], Snapshot]) -> Snapshot:
        """``take()``, after fetching the current Secrets and Services it reads (when those are
        ``FetchedObjects``); taken again if any copy changed since, by this refresh or a concurrent one (the
        snapshot holds their content)."""
        fetched = [s for s in (self.services, self.secrets) if isinstance(s, FetchedObjects)]
        versions = [s.version for s in fetched]
        snap = take()
        wanted = (
            (
                self.services,
                [str(referent_key(b.spec.backend_ref, b)) for b in snap.backends.values()
                 if v.is_service(b.spec.backend_ref)],
            ),
            (self.secrets, [str(u.secret) for p in snap.security_policies.values()
                            for u in v.secret_uses(p)]),
            (self.services, [str(k) for p in snap.v1_pools.values() if (k := epp_service_key(p))]),
        )  # fmt: skip
        for source, keys in wanted:
            if isinstance(source, FetchedObjects):
                await source.refresh(keys)
        return take() if [s.version for s in fetched] != versions else snap

    def snapshot(self, gateway: ObjKey) -> Snapshot:
        """Everything the reconcile of ``gateway`` reads (DNS answers left empty: the reconcile adds them)."""
        self._prune()
        routes = ROUTES.all(self.routes.by_index(IDX_GATEWAY, str(gateway)))
        return self._collect(
            gateway=gateway,
            gateway_object=self.gateways.get(str(gateway)),
            routes=routes,
            backend_keys={k for r in routes for k in v.refs_of_kind(r, BackendKind.AI_SERVICE_BACKEND)},
            pool_keys={k for r in routes for k in v.refs_of_kind(r, BackendKind.INFERENCE_POOL)},
            v1_pool_keys={k for r in routes for k in v.v1_pool_refs(r)},
        )

    def object_snapshot(self, kind: str, obj: Obj) -> Snapshot:
        """A snapshot holding ``obj`` and what it references, for its own status when no Gateway reads it."""
        k = v.key_of(obj)
        gw = ObjKey("", "")
        if kind == AIServiceBackend.KIND_INFO.kind:
            return self._collect(gateway=gw, backend_keys={k})
        if kind == InferencePool.KIND_INFO.kind:
            return self._collect(gateway=gw, pool_keys={k})
        if kind == V1_POOL_KIND:
            return self._collect(gateway=gw, v1_pool_keys={k})
        if kind == InferenceModel.KIND_INFO.kind:
            snap = self._collect(gateway=gw, pool_keys={ObjKey.parse(p) for p in model_pools(obj)})
            return snap if snap.models else replace(snap, models=tuple(MODELS.all([obj])))
        if kind == BackendSecurityPolicy.KIND_INFO.kind:
            policy = POLICIES(obj)
            return Snapshot(
                gateway=gw,
                security_policies={k: policy} if policy is not None else {},
                secrets=self._secrets_of([obj]),
                grants=self._grants_of([], [obj]),
            )
        raise ValueError(f"no object snapshot for kind {kind}")

    def _prune(self) -> None:
        for parsed, st in (
            (ROUTES, self.routes), (BACKENDS, self.backends), (POLICIES, self.policies),
            (POOLS, self.pools), (MODELS, self.models), (EG_BACKENDS, self.eg_backends),
            (V1_POOLS, self.v1_pools), (OBJECTIVES, self.objectives),
        ):  # fmt: skip
            parsed.prune(st)

    def _grants_of(self, backends: Iterable[Obj], policies: Iterable[Obj]) -> tuple[Obj, ...]:
        """The ReferenceGrants of the namespaces these objects refer into from another one."""
        namespaces = {ns for b in backends for ns in backend_foreign_namespaces(b)}
        namespaces |= {ns for p in policies for ns in policy_foreign_namespaces(p)}
        return tuple(g for ns in sorted(namespaces) for g in self.grants.list(ns))

    def policy_refusals(self, gateways: Iterable[ObjKey]) -> dict[ObjKey, str]:
        """The API server's refusals of these Gateways' EnvoyExtensionPolicies (see ``refused_policies``)."""
        return {k: m for k in gateways if (m := self.refused_policies.get(k)) is not None}

    def _policies_of_gateways(self, gateways: Iterable[ObjKey]) -> dict[ObjKey, Obj]:
        out: dict[ObjKey, Obj] = {}
        for gw in gateways:
            obj = self.extension_policies.get(f"{gw.namespace}/{extproc_name(gw.name)}")
            if obj is not None:
                out[gw] = obj
        return out

    def _secrets_of(self, policies: Iterable[Obj]) -> dict[ObjKey, dict[str, str]]:
        out: dict[ObjKey, dict[str, str]] = {}
        for p in policies:
            for s in policy_secrets(p):
                sec = self.secrets.get(s)
                if sec is not None:
                    out[ObjKey.parse(s)] = dict(sec.get("data") or {})
        return out

    def _collect(
        self,
        *,
        gateway: ObjKey,
        gateway_object: Obj | None = None,
        routes: list[AIGatewayRoute] | None = None,
        backend_keys: set[ObjKey] | None = None,
        pool_keys: set[ObjKey] | None = None,
        v1_pool_keys: set[ObjKey] | None = None,
    ) -> Snapshot:
        routes = routes or []
        backends: dict[ObjKey, Obj] = {}
        for bk in backend_keys or ():
            b = self.backends.get(str(bk))
            if b is not None:
                backends[bk] = b
        pools: dict[ObjKey, InferencePool] = {}
        models: list[Obj] = []
        if self.options.enable_inference_extension:
            for pk in sorted(pool_keys or ()):
                # a missing pool's models too: their status must say the pool is gone
                models.extend(self.models.by_index(IDX_POOL, str(pk)))
                p = self.pools.get(str(pk))
                if p is None or (pm := POOLS(p)) is None:
                    continue
                pools[pk] = pm
                for b in self.backends_selected(pm):
                    backends[v.key_of(b)] = b
        services: dict[ObjKey, Obj] = {}
        eg_backends: dict[ObjKey, Backend] = {}
        policies: dict[ObjKey, Obj] = {}
        for b in backends.values():
            for s in backend_services(b):
                if (o := self.services.get(s)) is not None:
                    services[ObjKey.parse(s)] = o
            for s in backend_eg_backends(b):
                if (o := self.eg_backends.get(s)) is not None and (eg := EG_BACKENDS(o)) is not None:
                    eg_backends[ObjKey.parse(s)] = eg
            for s in backend_policies(b):
                if (o := self.policies.get(s)) is not None:
                    policies[ObjKey.parse(s)] = o
        v1_pools: dict[ObjKey, V1InferencePool] = {}
        objectives: list[Obj] = []
        pods: dict[str, Obj] = {}
        if self.options.enable_inference_extension:
            for pk in sorted(v1_pool_keys or ()):
                p = self.v1_pools.get(str(pk))
                if p is None or (v1 := V1_POOLS(p)) is None:
                    continue
                v1_pools[pk] = v1
                objectives.extend(self.objectives.by_index(IDX_POOL, str(pk)))
                if (ek := epp_service_key(v1)) is not None and (o := self.services.get(str(ek))) is not None:
                    services[ek] = o
                for pod in self.pods.list(pk.namespace):
                    if pool_selects_pod(v1, pod):
                        pods[str(v.key_of(pod))] = pod
        targeted = {k for r in routes for k in v.gateway_keys(r)}
        existing = frozenset(k for k in targeted if str(k) in self.gateways)
        pool_parents = {
            pk: tuple(sorted(g for g in self.gateways_for_pool_key(pk) if str(g) in self.gateways))
            for pk in pools
        }
        v1_pool_parents = {
            pk: tuple(sorted(g for g in self.gateways_for_v1_pool_key(pk) if str(g) in self.gateways))
            for pk in v1_pools
        }
        return Snapshot(
            gateway=gateway,
            gateway_object=gateway_object,
            routes=tuple(routes),
            backends={k: m for k, o in backends.items() if (m := BACKENDS(o)) is not None},
            security_policies={k: sp for k, o in policies.items() if (sp := POLICIES(o)) is not None},
            services=services,
            eg_backends=eg_backends,
            secrets=self._secrets_of(policies.values()),
            pools=pools,
            models=tuple(MODELS.all(models)),
            gateways=existing,
            pool_parents=pool_parents,
            v1_pools=v1_pools,
            pods=tuple(pods[k] for k in sorted(pods)),
            v1_pool_parents=v1_pool_parents,
            objectives=tuple(OBJECTIVES.all(objectives)),
            grants=self._grants_of(backends.values(), policies.values()),
            extension_policies=self._policies_of_gateways(existing),
            refused_policies=self.policy_refusals(existing),
        )
