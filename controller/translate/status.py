"""Conditions of every object one Gateway's reconcile involves, computed from a snapshot alone.

Each function is deterministic and depends only on the object and what it references, never on which Gateway's
snapshot it is computed from: two Gateways that share a backend compute the same conditions for it, so their
reconciles never fight over its status.

Reasons (``Accepted`` / ``ResolvedRefs``, positive polarity, True reason = the type):

- AIGatewayRoute: ``Accepted`` False ``NoMatchingParent`` (no targetRef names an existing Gateway),
  ``UnsupportedValue`` (filterConfig type other than ExternalProcessor); ``ResolvedRefs`` False
  ``BackendNotFound`` (missing AIServiceBackend/InferencePool, or one whose own references are broken),
  ``InvalidKind`` (an InferencePool ref while the inference extension is disabled); ``PartiallyInvalid``
  (Gateway API's condition for a route served without its invalid parts) True ``InvalidCostExpression``
  when an ``llmRequestCosts`` CEL expression does not compile (the message has the compiler's error; that
  cost is left out, the rest of the route is served), else False ``Valid``.
- AIServiceBackend: ``ResolvedRefs`` False ``InvalidKind`` (backendRef not a Service or EG Backend, or a
  security policy ref of another kind), ``RefNotPermitted`` (the Service/Backend, or its policy's Secret, is
  in another namespace and no ReferenceGrant allows it; the message names the grant), ``BackendNotFound``
  (Service/Backend missing), ``SecurityPolicyNotFound``, ``SecretNotFound`` (through its policy).
- BackendSecurityPolicy: ``Accepted`` False ``UnsupportedValue``, or ``Unsupported`` for the methods that
  need credential rotation (AWS ``oidcExchangeToken``, ``AzureCredentials``); ``ResolvedRefs`` False
  ``RefNotPermitted`` (a Secret in another namespace without a ReferenceGrant), ``SecretNotFound`` (the
  Secret, or the key in it, is missing; the message names both).
- InferencePool, per parent Gateway: ``Accepted`` True; ``ResolvedRefs`` False ``InvalidExtensionRef``,
  ``PortMismatch`` (names the backend and the object with the wrong port), ``BackendNotFound`` (the selector
  matches nothing usable), ``DNSResolutionFailed`` (a member's hostname never resolved).
- InferenceModel: ``Accepted`` False ``ModelNameInUse`` (an older model of the pool has the name),
  ``PoolNotFound`` (the message names the pool), ``InvalidKind`` (poolRef not an InferencePool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from api.costexpr import CostExpressionError, compile_cost
from api.picker import PICKER_ANNOTATION, EndpointPickerConfig, parse_picker_annotation
from controller.translate import views
from controller.translate.attachment import EXTENSION_POLICY_NOT_ACCEPTED, Attachment, attachment
from controller.translate.grants import REF_NOT_PERMITTED, Ref, permitted
from controller.translate.names import (
    AIGW_GROUP,
    INFERENCE_GROUP,
    ObjKey,
    service_hostname,
)
from controller.translate.snapshot import BuildOptions, DnsAnswer, Obj, Snapshot
from controller.translate.views import (
    BackendView,
    EgEndpoint,
    ModelView,
    PolicyView,
    PoolView,
    RouteView,
    SecretUse,
)

ACCEPTED: Final = "Accepted"
RESOLVED_REFS: Final = "ResolvedRefs"
PARTIALLY_INVALID: Final = "PartiallyInvalid"
"""Gateway API's negative-polarity route condition: True means part of the route was dropped."""

KIND_ROUTE: Final = "AIGatewayRoute"
KIND_BACKEND: Final = "AIServiceBackend"
KIND_POLICY: Final = "BackendSecurityPolicy"
KIND_POOL: Final = "InferencePool"
KIND_MODEL: Final = "InferenceModel"


@dataclass(frozen=True, slots=True)
class Cond:
    """A condition without timestamps (the status writer stamps ``lastTransitionTime``)."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        """No problem reported: True for the positive-polarity types, False for PartiallyInvalid."""
        return self.status == ("False" if self.type == PARTIALLY_INVALID else "True")


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """The desired conditions of one object. For an InferencePool, ``parents`` holds one entry per Gateway and
    ``conditions`` is empty."""

    kind: str
    key: ObjKey
    generation: int
    conditions: tuple[Cond, ...] = ()
    parents: tuple[tuple[ObjKey, tuple[Cond, ...]], ...] = ()

    def problems(self) -> list[Cond]:
        out = [c for c in self.conditions if not c.ok]
        for _, conds in self.parents:
            out.extend(c for c in conds if not c.ok and c not in out)
        return out


def _true(typ: str, message: str) -> Cond:
    return Cond(typ, "True", typ, message)


def _cond(typ: str, problems: list[Problem], ok_message: str) -> Cond:
    if not problems:
        return _true(typ, ok_message)
    return Cond(typ, "False", problems[0].reason, "; ".join(dict.fromkeys(p.message for p in problems)))


# --- BackendSecurityPolicy


def policy_problems(
    policy: PolicyView, secrets: Mapping[ObjKey, Mapping[str, str]], grants: Iterable[Obj]
) -> list[Problem]:
    """What keeps a policy from providing credentials: a Secret in another namespace without a
    ReferenceGrant, the Secret, or the key in it, missing."""
    out: list[Problem] = []
    for use in policy.uses:
        ref = Ref(AIGW_GROUP, KIND_POLICY, policy.key.namespace, "", "Secret", use.secret)
        if not permitted(ref, grants):
            out.append(Problem(REF_NOT_PERMITTED, ref.missing_grant()))
            continue
        data = secrets.get(use.secret)
        if data is None:
            out.append(Problem("SecretNotFound", f"Secret {use.secret} not found"))
        elif use.key not in data:
            out.append(Problem("SecretNotFound", f"Secret {use.secret} has no key {use.key!r}"))
    return out


def policy_status(policy: PolicyView, snap: Snapshot) -> ObjectStatus:
    accepted = (
        Cond(ACCEPTED, "False", policy.unsupported_reason, policy.unsupported)
        if policy.unsupported
        else _true(ACCEPTED, f"{policy.type} policy accepted")
    )
    resolved = _cond(
        RESOLVED_REFS, policy_problems(policy, snap.secrets, snap.grants), "all referenced Secrets found"
    )
    return ObjectStatus(KIND_POLICY, policy.key, policy.generation, (accepted, resolved))


# --- AIServiceBackend


@dataclass(frozen=True, slots=True)
class BackendResolution:
    """A backend with what it references, resolved (or the problems that prevent it)."""

    view: BackendView
    problems: tuple[Problem, ...]
    policy: PolicyView | None
    secret_uses: tuple[SecretUse, ...]


def resolve_backend(backend: BackendView, snap: Snapshot) -> BackendResolution:
    problems: list[Problem] = []
    ref = backend.backend_ref
    grant_ref = Ref(
        AIGW_GROUP,
        KIND_BACKEND,
        backend.key.namespace,
        "" if ref.is_service else ref.group,
        ref.kind,
        ref.key,
    )
    if (ref.is_service or ref.is_eg_backend) and not permitted(grant_ref, snap.grants):
        problems.append(Problem(REF_NOT_PERMITTED, grant_ref.missing_grant()))
    elif ref.is_service:
        if ref.key not in snap.services:
            problems.append(Problem("BackendNotFound", f"Service {ref.key} not found"))
    elif ref.is_eg_backend:
        if ref.key not in snap.eg_backends:
            problems.append(
                Problem("BackendNotFound", f"Backend {ref.key} (gateway.envoyproxy.io) not found")
            )
    else:
        problems.append(
            Problem(
                "InvalidKind",
                f"backendRef {ref.group or 'core'}/{ref.kind} {ref.name} is not supported: "
                "use a Service or a gateway.envoyproxy.io Backend",
            )
        )
    policy: PolicyView | None = None
    uses: tuple[SecretUse, ...] = ()
    if backend.security_policy is not None:
        group, kind, name = backend.security_policy
        pkey = ObjKey(backend.key.namespace, name)
        if group != AIGW_GROUP or kind != "BackendSecurityPolicy":
            problems.append(
                Problem("InvalidKind", f"backendSecurityPolicyRef {group}/{kind} is not supported")
            )
        elif pkey not in snap.security_policies:
            problems.append(Problem("SecurityPolicyNotFound", f"BackendSecurityPolicy {pkey} not found"))
        else:
            policy = PolicyView.of(snap.security_policies[pkey])
            if policy.unsupported:
                problems.append(
                    Problem(policy.unsupported_reason, f"BackendSecurityPolicy {pkey}: {policy.unsupported}")
                )
            for p in policy_problems(policy, snap.secrets, snap.grants):
                problems.append(Problem(p.reason, f"BackendSecurityPolicy {pkey}: {p.message}"))
            uses = policy.uses
    return BackendResolution(backend, tuple(problems), policy, uses)


def backend_status(res: BackendResolution) -> ObjectStatus:
    conds = (
        _true(ACCEPTED, "backend accepted"),
        _cond(RESOLVED_REFS, list(res.problems), "all references resolved"),
    )
    return ObjectStatus(KIND_BACKEND, res.view.key, res.view.generation, conds)


# --- InferencePool


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """A pool member: its backend, and the hostnames and IPs its endpoints come from."""

    backend: BackendResolution
    hostnames: tuple[str, ...]
    """DNS names to resolve (a Service's FQDN, a Backend's FQDN endpoints)."""
    ips: tuple[str, ...]
    """Addresses used as they are (a Backend's IP endpoints)."""


@dataclass(frozen=True, slots=True)
class PoolResolution:
    view: PoolView
    problems: tuple[Problem, ...]
    members: tuple[MemberPlan, ...]
    """Members whose references and ports check out (empty when the extensionRef is invalid)."""
    picker: EndpointPickerConfig | None = None
    """The endpoint-picker annotation's settings; None: the defaults (also when the annotation is invalid)."""
    picker_problem: Problem | None = None
    """Why the endpoint-picker annotation was not used (the pool is then served with the defaults)."""


def _picker(pool: PoolView) -> tuple[EndpointPickerConfig | None, Problem | None]:
    if pool.picker_annotation is None:
        return None, None
    try:
        return parse_picker_annotation(pool.picker_annotation), None
    except ValueError as e:
        return None, Problem(
            "InvalidPickerConfig",
            f"annotation {PICKER_ANNOTATION}: {e}; the pool is served with the default picker settings "
            "until it is fixed",
        )


def _valid_extension(pool: PoolView, options: BuildOptions) -> bool:
    return (
        pool.ext_group in ("", "core")
        and pool.ext_kind == "Service"
        and pool.ext_name == options.extension_ref_name
    )


def plan_pool(
    pool: PoolView,
    snap: Snapshot,
    options: BuildOptions,
    backends: Mapping[ObjKey, BackendResolution] | None = None,
) -> PoolResolution:
    """Select the pool's members, check their ports, and list what they resolve through. ``backends``: the
    snapshot's backends already resolved (computed here when not given)."""
    if backends is None:
        backends = {k: resolve_backend(BackendView.of(o), snap) for k, o in snap.backends.items()}
    problems: list[Problem] = []
    if not _valid_extension(pool, options):
        problems.append(
            Problem(
                "InvalidExtensionRef",
                f"extensionRef {pool.ext_kind} {pool.ext_name!r} is not served here: this controller "
                f"serves pools whose extensionRef is the Service {options.extension_ref_name!r}",
            )
        )
        return PoolResolution(pool, tuple(problems), ())
    selected = sorted((k for k in backends if k.namespace == pool.key.namespace), key=lambda k: k.name)
    members: list[MemberPlan] = []
    any_selected = False
    for key in selected:
        res = backends[key]
        bv = res.view
        if not pool.selects(bv.labels):
            continue
        any_selected = True
        if res.problems:
            problems.append(
                Problem(res.problems[0].reason, f"AIServiceBackend {bv.key}: {res.problems[0].message}")
            )
            continue
        plan = _member_plan(pool, res, snap, options, problems)
        if plan is not None:
            members.append(plan)
    if not any_selected:
        sel = ",".join(f"{k}={v}" for k, v in sorted(pool.selector.items())) or "<empty>"
        problems.append(
            Problem(
                "BackendNotFound",
                f"selector {sel} matches no AIServiceBackend in namespace {pool.key.namespace}",
            )
        )
    for m in members:
        for host in m.hostnames:
            ans = snap.dns.get(host)
            if ans is not None and ans.error is not None and not ans.ips:
                problems.append(
                    Problem(
                        "DNSResolutionFailed",
                        f"AIServiceBackend {m.backend.view.key}: {host} could not be resolved: {ans.error}",
                    )
                )
    picker, picker_problem = _picker(pool)
    return PoolResolution(pool, tuple(problems), tuple(members), picker, picker_problem)


def _member_plan(
    pool: PoolView, res: BackendResolution, snap: Snapshot, options: BuildOptions, problems: list[Problem]
) -> MemberPlan | None:
    bv = res.view
    ref = bv.backend_ref
    port = pool.target_port
    if ref.port is not None and ref.port != port:
        problems.append(
            Problem(
                "PortMismatch",
                f"AIServiceBackend {bv.key}: backendRef port {ref.port} != targetPortNumber {port}",
            )
        )
        return None
    if ref.is_service:
        ports = views.service_ports(snap.services[ref.key])
        if port not in ports:
            problems.append(
                Problem(
                    "PortMismatch",
                    f"AIServiceBackend {bv.key}: Service {ref.key} has no port {port} "
                    f"(ports: {', '.join(map(str, ports)) or 'none'})",
                )
            )
            return None
        host = service_hostname(name=ref.name, namespace=ref.namespace, cluster_domain=options.cluster_domain)
        return MemberPlan(res, (host,), ())
    endpoints = views.eg_backend_endpoints(snap.eg_backends[ref.key])
    bad: list[EgEndpoint] = [e for e in endpoints if e.kind == "unix" or e.port != port]
    if bad:
        e = bad[0]
        what = (
            "a unix socket endpoint can't be used in a pool"
            if e.kind == "unix"
            else (f"endpoint {e.address}:{e.port} does not use targetPortNumber {port}")
        )
        problems.append(Problem("PortMismatch", f"AIServiceBackend {bv.key}: Backend {ref.key}: {what}"))
        return None
    return MemberPlan(
        res,
        tuple(dict.fromkeys(e.address for e in endpoints if e.kind == "fqdn")),
        tuple(dict.fromkeys(e.address for e in endpoints if e.kind == "ip")),
    )


def pool_status(res: PoolResolution, parents: Iterable[ObjKey]) -> ObjectStatus:
    accepted = _cond(
        ACCEPTED,
        [res.picker_problem] if res.picker_problem else [],
        "pool is served by the built-in endpoint picker",
    )
    resolved = _cond(RESOLVED_REFS, list(res.problems), f"{len(res.members)} member backend(s) resolved")
    return ObjectStatus(
        KIND_POOL,
        res.view.key,
        res.view.generation,
        parents=tuple((gw, (accepted, resolved)) for gw in sorted(set(parents))),
    )


# --- InferenceModel


@dataclass(frozen=True, slots=True)
class ModelResolution:
    view: ModelView
    problem: Problem | None


def resolve_models(models: Iterable[ModelView], pools: Mapping[ObjKey, object]) -> list[ModelResolution]:
    """Per pool, the oldest model with a name wins; the others are ``ModelNameInUse``."""
    out: list[ModelResolution] = []
    winners: dict[tuple[ObjKey, str], ModelView] = {}
    for m in sorted(models, key=lambda m: m.order):
        if m.pool_group != INFERENCE_GROUP or m.pool_kind != "InferencePool":
            out.append(
                ModelResolution(
                    m,
                    Problem(
                        "InvalidKind",
                        f"poolRef {m.pool_group}/{m.pool_kind} is not an {INFERENCE_GROUP} InferencePool",
                    ),
                )
            )
        elif m.pool_key not in pools:
            out.append(ModelResolution(m, Problem("PoolNotFound", f"InferencePool {m.pool_key} not found")))
        elif (m.pool_key, m.model_name) in winners:
            w = winners[(m.pool_key, m.model_name)]
            out.append(
                ModelResolution(
                    m,
                    Problem(
                        "ModelNameInUse",
                        f"modelName {m.model_name!r} is already used in InferencePool {m.pool_key} "
                        f"by the older InferenceModel {w.key}",
                    ),
                )
            )
        else:
            winners[(m.pool_key, m.model_name)] = m
            out.append(ModelResolution(m, None))
    return out


def model_status(res: ModelResolution) -> ObjectStatus:
    if res.problem is None:
        cond = _true(
            ACCEPTED, f"model {res.view.model_name!r} is served by InferencePool {res.view.pool_key}"
        )
    else:
        cond = Cond(ACCEPTED, "False", res.problem.reason, res.problem.message)
    return ObjectStatus(KIND_MODEL, res.view.key, res.view.generation, (cond,))


# --- AIGatewayRoute


@dataclass(frozen=True, slots=True)
class RouteResolution:
    """``accepted``: what keeps the route from being served anywhere; ``attached``: the target Gateways whose
    ext_proc is attached (its HTTPRoutes' parents); ``detached``: one problem per target Gateway whose
    EnvoyExtensionPolicy was refused (by the API server or Envoy Gateway)."""

    view: RouteView
    accepted: tuple[Problem, ...]
    problems: tuple[Problem, ...]
    usable_backends: frozenset[ObjKey]
    usable_pools: frozenset[ObjKey]
    invalid_costs: tuple[Problem, ...] = ()
    """One problem per CEL cost that does not compile; those costs never reach the ext_proc."""
    invalid_cost_keys: frozenset[str] = frozenset()
    attached: tuple[ObjKey, ...] = ()
    detached: tuple[Problem, ...] = ()


def _cost_problems(route: RouteView) -> dict[str, Problem]:
    """``metadataKey -> problem`` for each CEL cost that does not compile (the same compiler as the
    ext_proc's, so what passes here loads there)."""
    out: dict[str, Problem] = {}
    for i, c in enumerate(route.costs):
        if c.type != "CEL":
            continue
        try:
            compile_cost(c.cel or "")
        except CostExpressionError as e:
            out[c.metadata_key] = Problem(
                "InvalidCostExpression",
                f"llmRequestCosts[{i}] ({c.metadata_key}): CEL expression {c.cel!r}: {e}",
            )
    return out


def resolve_route(
    route: RouteView,
    *,
    gateways: frozenset[ObjKey],
    backends: Mapping[ObjKey, BackendResolution],
    pools: Mapping[ObjKey, PoolResolution],
    options: BuildOptions,
    attachments: Mapping[ObjKey, Attachment],
) -> RouteResolution:
    accepted: list[Problem] = []
    if route.filter_type != "ExternalProcessor":
        accepted.append(
            Problem("UnsupportedValue", f"filterConfig.type {route.filter_type} is not supported")
        )
    targets = route.gateway_keys()
    missing = [k for k in targets if k not in gateways]
    if not targets or len(missing) == len(targets):
        names = ", ".join(str(k) for k in missing) or "none"
        accepted.append(
            Problem("NoMatchingParent", f"no targetRef names an existing Gateway (missing: {names})")
        )
    problems: list[Problem] = []
    ok_b: set[ObjKey] = set()
    ok_p: set[ObjKey] = set()
    for k in route.refs_of_kind("AIServiceBackend"):
        b = backends.get(k)
        if b is None:
            problems.append(Problem("BackendNotFound", f"AIServiceBackend {k} not found"))
        elif b.problems:
            problems.append(Problem("BackendNotFound", f"AIServiceBackend {k}: {b.problems[0].message}"))
        else:
            ok_b.add(k)
    for k in route.refs_of_kind("InferencePool"):
        if not options.enable_inference_extension:
            problems.append(
                Problem(
                    "InvalidKind",
                    f"InferencePool {k}: start the controller with --enable-inference-extension",
                )
            )
            continue
        p = pools.get(k)
        if p is None:
            problems.append(Problem("BackendNotFound", f"InferencePool {k} not found"))
        elif any(x.reason == "InvalidExtensionRef" for x in p.problems):
            problems.append(Problem("BackendNotFound", f"InferencePool {k}: {p.problems[0].message}"))
        else:
            ok_p.add(k)
    for kind in sorted(
        {r.kind for rule in route.rules for r in rule.backend_refs} - {KIND_BACKEND, KIND_POOL}
    ):
        problems.append(Problem("InvalidKind", f"backendRef kind {kind} is not supported"))
    bad_costs = _cost_problems(route)
    live = [k for k in targets if k in gateways]
    attached = tuple(k for k in live if attachments[k].attached)
    detached = tuple(
        Problem(EXTENSION_POLICY_NOT_ACCEPTED, f"{a.refused}; the route is not served on that Gateway")
        for k in live
        if (a := attachments[k]).refused
    )
    return RouteResolution(
        route,
        tuple(accepted),
        tuple(problems),
        frozenset(ok_b),
        frozenset(ok_p),
        tuple(bad_costs.values()),
        frozenset(bad_costs),
        attached,
        detached,
    )


def route_status(res: RouteResolution) -> ObjectStatus:
    conds = (
        _cond(ACCEPTED, [*res.accepted, *res.detached], "route accepted"),
        _cond(RESOLVED_REFS, list(res.problems), "all backend references resolved"),
        Cond(
            PARTIALLY_INVALID,
            "True",
            res.invalid_costs[0].reason,
            "; ".join(p.message for p in res.invalid_costs) + "; these costs are left out",
        )
        if res.invalid_costs
        else Cond(PARTIALLY_INVALID, "False", "Valid", "every llmRequestCosts expression compiles"),
    )
    return ObjectStatus(KIND_ROUTE, res.view.key, res.view.generation, conds)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Everything resolved for one snapshot: the input of the filter-config and resource builders."""

    routes: tuple[RouteResolution, ...]
    backends: Mapping[ObjKey, BackendResolution]
    pools: Mapping[ObjKey, PoolResolution]
    models: tuple[ModelResolution, ...]
    policies: Mapping[ObjKey, PolicyView] = field(default_factory=dict)

    def statuses(self, snap: Snapshot) -> list[ObjectStatus]:
        """Desired conditions of every object in the snapshot, in a stable order."""
        out = [route_status(r) for r in self.routes]
        out += [backend_status(self.backends[k]) for k in sorted(self.backends)]
        out += [policy_status(self.policies[k], snap) for k in sorted(self.policies)]
        out += [pool_status(self.pools[k], snap.pool_parents.get(k, ())) for k in sorted(self.pools)]
        out += [model_status(m) for m in sorted(self.models, key=lambda m: m.view.key)]
        return out


def resolve(snap: Snapshot, options: BuildOptions) -> Resolution:
    """Resolve every object of the snapshot (pure)."""
    backends = {k: resolve_backend(BackendView.of(o), snap) for k, o in snap.backends.items()}
    policies = {k: PolicyView.of(o) for k, o in snap.security_policies.items()}
    pools: dict[ObjKey, PoolResolution] = {}
    models: list[ModelResolution] = []
    if options.enable_inference_extension:
        pools = {k: plan_pool(PoolView.of(o), snap, options, backends) for k, o in snap.pools.items()}
        models = resolve_models((ModelView.of(o) for o in snap.models), snap.pools)
    attachments = {g: attachment(g, snap, options) for g in snap.gateways}
    routes = tuple(
        resolve_route(
            RouteView.of(o),
            gateways=snap.gateways,
            backends=backends,
            pools=pools,
            options=options,
            attachments=attachments,
        )
        for o in sorted(snap.routes, key=views.age_order)
    )
    return Resolution(routes, backends, pools, tuple(models), policies)


def dns_failures(res: Resolution, dns: Mapping[str, DnsAnswer]) -> list[tuple[ObjKey, ObjKey, str, str]]:
    """``(pool, backend, hostname, error)`` for every lookup that failed (stale answers included)."""
    out = []
    for pk in sorted(res.pools):
        for m in res.pools[pk].members:
            for host in m.hostnames:
                ans = dns.get(host)
                if ans is not None and ans.error is not None:
                    out.append((pk, m.backend.view.key, host, ans.error))
    return out
