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
owned objects                ``owner-gateway``    the Gateway in its ownerReferences
============================ ==================== ==========================================================

``gateways_for(kind, obj)`` follows these indexes (and pools' label selectors) from any object to every
Gateway whose reconcile reads it: the map functions of the Gateway controller. ``snapshot(gateway)`` assembles
the frozen input of the builders for one Gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from controller.runtime import Store
from controller.translate import BuildOptions, ObjKey, Snapshot, extproc_name
from controller.translate import views as v
from controller.translate.views import BackendView, ModelView, PolicyView, PoolView, RouteView

IDX_GATEWAY = "gateway"
IDX_BACKEND = "backend"
IDX_POOL = "pool"
IDX_SERVICE = "service"
IDX_EGBACKEND = "egbackend"
IDX_POLICY = "policy"
IDX_SECRET = "secret"
IDX_OWNER_GATEWAY = "owner-gateway"
IDX_SELECTOR = "selector"
IDX_LABEL = "label"
IDX_FOREIGN_NS = "foreign-namespace"

Obj = dict[str, Any]


def _keys(keys: Iterable[ObjKey]) -> list[str]:
    return [str(k) for k in keys]


def route_gateways(obj: Obj) -> list[str]:
    return _keys(RouteView.of(obj).gateway_keys())


def route_backends(obj: Obj) -> list[str]:
    return _keys(RouteView.of(obj).refs_of_kind("AIServiceBackend"))


def route_pools(obj: Obj) -> list[str]:
    return _keys(RouteView.of(obj).refs_of_kind("InferencePool"))


def backend_services(obj: Obj) -> list[str]:
    ref = BackendView.of(obj).backend_ref
    return [str(ref.key)] if ref.is_service else []


def backend_eg_backends(obj: Obj) -> list[str]:
    ref = BackendView.of(obj).backend_ref
    return [str(ref.key)] if ref.is_eg_backend else []


def backend_labels(obj: Obj) -> list[str]:
    """``ns/key=value`` for each label."""
    ns = v.key_of(obj).namespace
    return [f"{ns}/{a}={b}" for a, b in v.labels(obj).items()]


def backend_policies(obj: Obj) -> list[str]:
    b = BackendView.of(obj)
    return [f"{b.key.namespace}/{b.security_policy[2]}"] if b.security_policy else []


def policy_secrets(obj: Obj) -> list[str]:
    return [str(u.secret) for u in PolicyView.of(obj).uses]


def backend_foreign_namespaces(obj: Obj) -> list[str]:
    """The backendRef's namespace when it is not the backend's: where a ReferenceGrant must allow it."""
    b = BackendView.of(obj)
    return [b.backend_ref.namespace] if b.backend_ref.namespace != b.key.namespace else []


def policy_foreign_namespaces(obj: Obj) -> list[str]:
    p = PolicyView.of(obj)
    return sorted({u.secret.namespace for u in p.uses if u.secret.namespace != p.key.namespace})


def pool_selector(obj: Obj) -> list[str]:
    """``ns/key=value`` for each selector pair (``ns/`` for an empty selector, which selects everything)."""
    p = PoolView.of(obj)
    return [f"{p.key.namespace}/{a}={b}" for a, b in p.selector.items()] or [f"{p.key.namespace}/"]


def model_pools(obj: Obj) -> list[str]:
    return [str(ModelView.of(obj).pool_key)]


def owner_gateways(obj: Obj) -> list[str]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    return [
        f"{ns}/{o.get('name', '')}"
        for o in (obj.get("metadata") or {}).get("ownerReferences") or []
        if o.get("kind") == "Gateway"
    ]


def httproute_parents(obj: Obj) -> list[str]:
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    return [
        f"{p.get('namespace') or ns}/{p.get('name', '')}"
        for p in (obj.get("spec") or {}).get("parentRefs") or []
        if p.get("kind", "Gateway") == "Gateway"
    ]


def _store_with(index: str) -> Store:
    st = Store()
    st.add_indexer(index, lambda o: [])
    return st


def _key(s: str) -> ObjKey:
    ns, _, name = s.partition("/")
    return ObjKey(ns, name)


@dataclass
class Caches:
    """The stores the controller reads. ``pools`` and ``models`` are empty without the inference extension."""

    options: BuildOptions
    gateways: Store
    routes: Store
    backends: Store
    policies: Store
    secrets: Store
    services: Store
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

    # --- from any object to the Gateways it affects

    def gateways_of_routes(self, routes: Iterable[Obj]) -> set[ObjKey]:
        return {k for r in routes for k in RouteView.of(r).gateway_keys()}

    def pools_selecting(self, backend: Obj) -> list[Obj]:
        """The pools of the backend's namespace whose selector matches its labels (through ``selector``)."""
        k = v.key_of(backend)
        lbl = v.labels(backend)
        candidates: dict[str, Obj] = {}
        for value in [f"{k.namespace}/", *(f"{k.namespace}/{a}={b}" for a, b in lbl.items())]:
            for p in self.pools.by_index(IDX_SELECTOR, value):
                candidates[str(v.key_of(p))] = p
        return [p for p in candidates.values() if PoolView.of(p).selects(lbl)]

    def backends_selected(self, pool: PoolView) -> list[Obj]:
        """The AIServiceBackends a pool selects (through ``label``: the objects carrying its first pair)."""
        if not pool.selector:
            return self.backends.list(pool.key.namespace)
        first = min(pool.selector.items())
        candidates = self.backends.by_index(IDX_LABEL, f"{pool.key.namespace}/{first[0]}={first[1]}")
        return [b for b in candidates if pool.selects(v.labels(b))]

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
        if kind == "Gateway":
            return {v.key_of(obj)}
        if kind == "AIGatewayRoute":
            return set(RouteView.of(obj).gateway_keys())
        if kind == "AIServiceBackend":
            return self.gateways_for_backend(obj)
        if kind == "BackendSecurityPolicy":
            return self.gateways_for_backends(self.backends.by_index(IDX_POLICY, key))
        if kind == "Secret":
            out: set[ObjKey] = set()
            for p in self.policies.by_index(IDX_SECRET, key):
                out |= self.gateways_for_backends(self.backends.by_index(IDX_POLICY, str(v.key_of(p))))
            return out | {_key(g) for g in owner_gateways(obj)}
        if kind == "Service":
            return self.gateways_for_backends(self.backends.by_index(IDX_SERVICE, key)) | {
                _key(g) for g in owner_gateways(obj)
            }
        if kind == "Backend":
            return self.gateways_for_backends(self.backends.by_index(IDX_EGBACKEND, key)) | {
                _key(g) for g in owner_gateways(obj)
            }
        if kind == "InferencePool":
            return self.gateways_for_pool_key(v.key_of(obj))
        if kind == "InferenceModel":
            return self.gateways_for_pool_key(ModelView.of(obj).pool_key)
        if kind == "HTTPRoute":
            return {_key(g) for g in httproute_parents(obj)}
        if kind == "ReferenceGrant":
            return self.gateways_for_backends(self.backends_granted(obj))
        return {_key(g) for g in owner_gateways(obj)}

    def backends_granted(self, grant: Obj) -> list[Obj]:
        """The AIServiceBackends that refer into the grant's namespace, directly or through their policy: the
        objects whose status a grant may change."""
        ns = v.key_of(grant).namespace
        out = {str(v.key_of(b)): b for b in self.backends.by_index(IDX_FOREIGN_NS, ns)}
        for p in self.policies.by_index(IDX_FOREIGN_NS, ns):
            out.update((str(v.key_of(b)), b) for b in self.backends.by_index(IDX_POLICY, str(v.key_of(p))))
        return list(out.values())

    # --- snapshots

    def snapshot(self, gateway: ObjKey) -> Snapshot:
        """Everything the reconcile of ``gateway`` reads (DNS answers left empty: the reconcile adds them)."""
        routes = self.routes.by_index(IDX_GATEWAY, str(gateway))
        backend_keys = {_key(k) for r in routes for k in route_backends(r)}
        pool_keys = {_key(k) for r in routes for k in route_pools(r)}
        return self._collect(
            gateway=gateway,
            gateway_object=self.gateways.get(str(gateway)),
            routes=routes,
            backend_keys=backend_keys,
            pool_keys=pool_keys,
        )

    def object_snapshot(self, kind: str, obj: Obj) -> Snapshot:
        """A snapshot holding ``obj`` and what it references, for its own status when no Gateway reads it."""
        k = v.key_of(obj)
        gw = ObjKey("", "")
        if kind == "AIServiceBackend":
            return self._collect(gateway=gw, backend_keys={k})
        if kind == "InferencePool":
            return self._collect(gateway=gw, pool_keys={k})
        if kind == "InferenceModel":
            snap = self._collect(gateway=gw, pool_keys={ModelView.of(obj).pool_key})
            return snap if snap.models else replace(snap, models=(obj,))
        if kind == "BackendSecurityPolicy":
            return Snapshot(
                gateway=gw,
                security_policies={k: obj},
                secrets=self._secrets_of([obj]),
                grants=self._grants_of([], [obj]),
            )
        raise ValueError(f"no object snapshot for kind {kind}")

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
                    out[_key(s)] = dict(sec.get("data") or {})
        return out

    def _collect(
        self,
        *,
        gateway: ObjKey,
        gateway_object: Obj | None = None,
        routes: list[Obj] | None = None,
        backend_keys: set[ObjKey] | None = None,
        pool_keys: set[ObjKey] | None = None,
    ) -> Snapshot:
        routes = routes or []
        backends: dict[ObjKey, Obj] = {}
        for bk in backend_keys or ():
            b = self.backends.get(str(bk))
            if b is not None:
                backends[bk] = b
        pools: dict[ObjKey, Obj] = {}
        models: list[Obj] = []
        if self.options.enable_inference_extension:
            for pk in sorted(pool_keys or ()):
                # a missing pool's models too: their status must say the pool is gone
                models.extend(self.models.by_index(IDX_POOL, str(pk)))
                p = self.pools.get(str(pk))
                if p is None:
                    continue
                pools[pk] = p
                for b in self.backends_selected(PoolView.of(p)):
                    backends[v.key_of(b)] = b
        services: dict[ObjKey, Obj] = {}
        eg_backends: dict[ObjKey, Obj] = {}
        policies: dict[ObjKey, Obj] = {}
        for b in backends.values():
            for s in backend_services(b):
                if (o := self.services.get(s)) is not None:
                    services[_key(s)] = o
            for s in backend_eg_backends(b):
                if (o := self.eg_backends.get(s)) is not None:
                    eg_backends[_key(s)] = o
            for s in backend_policies(b):
                if (o := self.policies.get(s)) is not None:
                    policies[_key(s)] = o
        targeted = {k for r in routes for k in RouteView.of(r).gateway_keys()}
        existing = frozenset(k for k in targeted if str(k) in self.gateways)
        pool_parents = {
            pk: tuple(sorted(g for g in self.gateways_for_pool_key(pk) if str(g) in self.gateways))
            for pk in pools
        }
        return Snapshot(
            gateway=gateway,
            gateway_object=gateway_object,
            routes=tuple(routes),
            backends=backends,
            security_policies=policies,
            services=services,
            eg_backends=eg_backends,
            secrets=self._secrets_of(policies.values()),
            pools=pools,
            models=tuple(models),
            gateways=existing,
            pool_parents=pool_parents,
            grants=self._grants_of(backends.values(), policies.values()),
            extension_policies=self._policies_of_gateways(existing),
            refused_policies=self.policy_refusals(existing),
        )
