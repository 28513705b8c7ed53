"""The resolver: one snapshot in, a typed ``Resolution`` out (pure).

It follows every reference (routes to backends and pools, backends to Services, Envoy Gateway Backends and
security policies, policies to Secrets, models to pools), selects each pool's members and checks their ports,
attaches the DNS answers to the members' hostnames, and settles conflicts (two InferenceModels with one
``modelName``). What it finds wrong is a ``Problem`` (a condition reason and message) on the object it
concerns. The emitters (``config``, ``resources``, ``conditions``) only read the ``Resolution``; none of them
calls back in here.

Each object's resolution depends only on the object and what it references, never on which Gateway's snapshot
it comes from: two Gateways that share a backend resolve it alike, so their reconciles never fight over its
status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from api import filterconfig as fc
from api.cel import broken_rules
from api.corev1 import SECRET, SERVICE
from api.costexpr import CostExpressionError, compile_cost
from api.gatewayapi import referent_key
from api.headers import header_credential
from api.inference import GROUP as INFERENCE_GROUP
from api.inference import InferenceModel, InferencePool
from api.inference_v1 import GROUP as INFERENCE_V1_GROUP
from api.inference_v1 import InferencePool as V1InferencePool
from api.meta import ConditionStatus, DesiredCondition
from api.objects import ObjKey, age_order, core_group
from api.picker import PICKER_ANNOTATION, EndpointPickerConfig, parse_picker_annotation
from api.shared import BackendKind, CostType
from api.v1alpha1 import (
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    FilterType,
)
from controller.translate import views
from controller.translate.attachment import EXTENSION_POLICY_NOT_ACCEPTED, Attachment, attachment
from controller.translate.epp import EppPlan, plan_epp
from controller.translate.grants import REF_NOT_PERMITTED, Ref, permitted
from controller.translate.names import service_hostname
from controller.translate.podpool import parent_conditions, pool_endpoints
from controller.translate.snapshot import BuildOptions, DnsAnswer, Snapshot
from controller.translate.views import SecretUse


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an object, or one of its references, is not usable: a condition reason and message."""

    reason: str
    message: str


INVALID_CREDENTIAL: Final = "InvalidCredential"


@dataclass(frozen=True, slots=True)
class InvalidCredential:
    """A credential the ext_proc sends as a header (an API key, an Azure access token) that a header can't
    carry, by ``api.headers.header_credential``, the rule the ext_proc loads it with. The ext_proc refuses a
    whole config over one such key, so the resolver leaves the policy's backends out (their ``ResolvedRefs``
    says why) and the rest of the Gateway is served; a composer that would rather refuse the whole change
    (``aigw run``) reads these findings from ``Resolution.invalid_credentials``."""

    use: SecretUse
    what: str
    """What is wrong with the value ("is empty", "holds characters not allowed in an HTTP header", ...);
    never the value itself."""

    @property
    def problem(self) -> Problem:
        return Problem(
            INVALID_CREDENTIAL,
            f"Secret {self.use.secret} key {self.use.key!r} {self.what}; the backends using this policy are "
            "not served until it is fixed",
        )


@dataclass(frozen=True, slots=True)
class PolicyResolution:
    policy: BackendSecurityPolicy
    unsupported: str | None
    """Why the policy can't be used (the rules of its own it breaks), or ``None``."""
    unsupported_reason: str
    uses: tuple[SecretUse, ...]
    """The Secret keys its credentials are read from."""
    problems: tuple[Problem, ...]
    """Secrets, or keys in them, that are missing or unusable (``invalid_credential``'s problem included)."""
    credential: SecretUse | None = None
    """The one Secret key the ext_proc reads the credentials from (``views.credential_use``): only it is
    copied to the Gateway's auth Secret (never a client secret the rotation reads)."""
    invalid_credential: InvalidCredential | None = None
    """The credential, when it is one a header can't carry."""


@dataclass(frozen=True, slots=True)
class BackendResolution:
    """A backend with what it references, resolved (or the problems that prevent it)."""

    backend: AIServiceBackend
    problems: tuple[Problem, ...]
    policy: PolicyResolution | None

    @property
    def key(self) -> ObjKey:
        return self.backend.ref

    @property
    def secret_uses(self) -> tuple[SecretUse, ...]:
        """The credential the ext_proc reads for this backend (none without a policy)."""
        if self.policy is None or self.policy.credential is None:
            return ()
        return (self.policy.credential,)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An address of a pool member: an IP as given, or one a hostname resolved to."""

    ip: str
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """A pool member: its backend, and the hostnames and IPs its endpoints come from."""

    backend: BackendResolution
    hostnames: tuple[str, ...]
    """DNS names to resolve (a Service's FQDN, a Backend's FQDN endpoints)."""
    ips: tuple[str, ...]
    """Addresses used as they are (a Backend's IP endpoints)."""
    endpoints: tuple[Endpoint, ...] = ()
    """``ips``, then the addresses of each hostname (sorted), from the snapshot's DNS answers; repeats are
    left to the config emitter, which compares addresses in their canonical form."""


@dataclass(frozen=True, slots=True)
class PoolResolution:
    pool: InferencePool
    problems: tuple[Problem, ...]
    members: tuple[MemberPlan, ...]
    """Members whose references and ports check out (empty when the extensionRef is invalid)."""
    picker: EndpointPickerConfig | None = None
    """The endpoint-picker annotation's settings; None: the defaults (also when the annotation is invalid)."""
    picker_problem: Problem | None = None
    """Why the endpoint-picker annotation was not used (the pool is then served with the defaults)."""
    selected: tuple[ObjKey, ...] = ()
    """The AIServiceBackends its selector picks, usable or not (``members`` are the usable ones)."""

    @property
    def key(self) -> ObjKey:
        return self.pool.ref


@dataclass(frozen=True, slots=True)
class V1PoolResolution:
    """A v1 InferencePool: its endpoints (every target port of its serving Pods) and its conditions for
    each parent Gateway."""

    pool: V1InferencePool
    endpoints: tuple[fc.Endpoint, ...]
    conditions: tuple[DesiredCondition, ...]
    epp: EppPlan | None = None
    """Its external endpoint picker; None when our picker serves it."""
    objectives: tuple[tuple[str, int], ...] = ()
    """``(name, priority)`` of each InferenceObjective naming the pool, by name (unset priority: 0)."""

    @property
    def key(self) -> ObjKey:
        return self.pool.ref

    @property
    def problem(self) -> DesiredCondition | None:
        """The first condition that is not True (the pool is then not served)."""
        return next((c for c in self.conditions if c.status != ConditionStatus.TRUE), None)


@dataclass(frozen=True, slots=True)
class ModelResolution:
    model: InferenceModel
    problem: Problem | None

    @property
    def pool_key(self) -> ObjKey:
        return views.pool_key(self.model)


@dataclass(frozen=True, slots=True)
class RouteResolution:
    route: AIGatewayRoute
    accepted: tuple[Problem, ...]
    """Why the route is not Accepted (empty: it is)."""
    problems: tuple[Problem, ...]
    """References that do not resolve."""
    usable_backends: frozenset[ObjKey]
    usable_pools: frozenset[ObjKey]
    invalid_costs: tuple[Problem, ...] = ()
    """One problem per CEL cost that does not compile; those costs never reach the ext_proc."""
    invalid_cost_keys: frozenset[str] = frozenset()
    attached: tuple[ObjKey, ...] = ()
    """The target Gateways whose ext_proc is attached: the parents of the route's HTTPRoutes."""
    detached: tuple[Problem, ...] = ()
    """One problem per target Gateway whose EnvoyExtensionPolicy was refused (API server or Envoy Gateway)."""
    usable_v1_pools: frozenset[ObjKey] = frozenset()
    """The v1 InferencePools (``inference.networking.k8s.io``) the route may send to."""

    @property
    def key(self) -> ObjKey:
        return self.route.ref


@dataclass(frozen=True, slots=True)
class Resolution:
    """Everything resolved for one snapshot: the only input of the emitters, with the snapshot itself."""

    gateway: ObjKey
    routes: tuple[RouteResolution, ...]
    """Oldest first, then by ``namespace/name``."""
    backends: Mapping[ObjKey, BackendResolution]
    pools: Mapping[ObjKey, PoolResolution]
    models: tuple[ModelResolution, ...]
    policies: Mapping[ObjKey, PolicyResolution] = field(default_factory=dict)
    pool_parents: Mapping[ObjKey, tuple[ObjKey, ...]] = field(default_factory=dict)
    v1_pools: Mapping[ObjKey, V1PoolResolution] = field(default_factory=dict)
    v1_pool_parents: Mapping[ObjKey, tuple[ObjKey, ...]] = field(default_factory=dict)

    def used_hostnames(self) -> list[str]:
        """The DNS names the filter config needs: the hostnames of the members of pools that accepted routes
        reference. Backends reached through their own Envoy cluster are resolved by Envoy, not here."""
        used = {k for r in self.routes for k in r.usable_pools}
        hosts = {h for k in used for m in self.pools[k].members for h in m.hostnames}
        hosts |= {
            p.hostname
            for k in {k for r in self.routes for k in r.usable_v1_pools}
            if (p := self.v1_pools[k].epp) is not None
        }
        return sorted(hosts)

    def invalid_credentials(self) -> list[tuple[ObjKey, InvalidCredential]]:
        """``(backend, finding)`` for each AIServiceBackend the Gateway's routes reach (as a backendRef, a
        fallback, or a member of an InferencePool they reference) whose policy's credential a header can't
        carry: the backends left out over it, in route order."""
        reached: dict[ObjKey, None] = {}
        for r in self.routes:
            reached.update(dict.fromkeys(views.refs_of_kind(r.route, BackendKind.AI_SERVICE_BACKEND)))
            for pk in views.refs_of_kind(r.route, BackendKind.INFERENCE_POOL):
                if (pool := self.pools.get(pk)) is not None:
                    reached.update(dict.fromkeys(pool.selected))
        return [
            (k, bad)
            for k in reached
            if (b := self.backends.get(k)) is not None
            and b.policy is not None
            and (bad := b.policy.invalid_credential) is not None
        ]


# --- BackendSecurityPolicy


CREDENTIALS_NOT_READY = "CredentialsNotReady"
"""The reason of a policy whose temporary credentials the rotation has not issued (yet, or any more)."""


def resolve_policy(policy: BackendSecurityPolicy, snap: Snapshot) -> PolicyResolution:
    """The policy's Secrets: one in another namespace needs a ReferenceGrant before it is read. A rotated
    method's own Secret (``ai-eg-bsp-<policy>``) is missing until the rotation has issued credentials: a
    ``CredentialsNotReady`` problem, whose cause the policy's ``CredentialsRotated`` condition tells."""
    broken = broken_rules(policy)
    uses = views.secret_uses(policy)
    credential = views.credential_use(policy)
    rotated = views.rotated_secret_key(policy) if views.needs_rotation(policy) else None
    problems: list[Problem] = []
    kind = BackendSecurityPolicy.KIND_INFO
    for use in uses:
        ref = Ref(kind.group, kind.kind, policy.metadata.namespace, SECRET.group, SECRET.kind, use.secret)
        if not permitted(ref, snap.grants):
            problems.append(Problem(REF_NOT_PERMITTED, ref.missing_grant()))
            continue
        data = snap.secrets.get(use.secret)
        if use.secret == rotated and (data is None or use.key not in data):
            problems.append(
                Problem(
                    CREDENTIALS_NOT_READY,
                    f"no temporary credentials in Secret {use.secret} yet (the controller's credential "
                    "rotation writes them): see the policy's CredentialsRotated condition",
                )
            )
        elif data is None:
            problems.append(Problem("SecretNotFound", f"Secret {use.secret} not found"))
        elif use.key not in data:
            problems.append(Problem("SecretNotFound", f"Secret {use.secret} has no key {use.key!r}"))
    invalid = _invalid_credential(policy, credential, snap) if not problems else None
    if invalid is not None:
        problems.append(invalid.problem)
    unsupported, reason = ("; ".join(r.message for r in broken), "UnsupportedValue") if broken else (None, "")
    return PolicyResolution(policy, unsupported, reason, uses, tuple(problems), credential, invalid)


def _invalid_credential(
    policy: BackendSecurityPolicy, credential: SecretUse | None, snap: Snapshot
) -> InvalidCredential | None:
    """The policy's credential, read (it exists: no problem was found), when it goes into a header and a
    header can't carry it."""
    if credential is None or not views.sends_as_header(policy):
        return None  # an AWS credentials file is parsed, never sent
    try:
        header_credential(base64.b64decode(snap.secrets[credential.secret][credential.key], validate=True))
    except binascii.Error:
        return InvalidCredential(credential, "is not base64 (as a Secret's data must be)")
    except ValueError as e:
        return InvalidCredential(credential, str(e))
    return None


# --- AIServiceBackend


def resolve_backend(
    backend: AIServiceBackend, snap: Snapshot, policies: Mapping[ObjKey, PolicyResolution]
) -> BackendResolution:
    problems: list[Problem] = []
    ref = backend.spec.backend_ref
    key = referent_key(ref, backend)
    kind = AIServiceBackend.KIND_INFO
    grant_ref = Ref(kind.group, kind.kind, backend.metadata.namespace, core_group(ref.group), ref.kind, key)
    if (views.is_service(ref) or views.is_eg_backend(ref)) and not permitted(grant_ref, snap.grants):
        problems.append(Problem(REF_NOT_PERMITTED, grant_ref.missing_grant()))
    elif views.is_service(ref):
        if key not in snap.services:
            problems.append(Problem("BackendNotFound", f"Service {key} not found"))
    elif views.is_eg_backend(ref):
        if key not in snap.eg_backends:
            problems.append(Problem("BackendNotFound", f"Backend {key} (gateway.envoyproxy.io) not found"))
    else:
        problems.append(
            Problem(
                "InvalidKind",
                f"backendRef {ref.group or 'core'}/{ref.kind} {ref.name} is not supported: "
                "use a Service or a gateway.envoyproxy.io Backend",
            )
        )
    policy: PolicyResolution | None = None
    pref = backend.spec.backend_security_policy_ref
    pkey = views.policy_key(backend)
    if pref is not None and pkey is not None:
        if not BackendSecurityPolicy.KIND_INFO.matches(pref.group, pref.kind):
            problems.append(
                Problem("InvalidKind", f"backendSecurityPolicyRef {pref.group}/{pref.kind} is not supported")
            )
        elif pkey not in policies:
            problems.append(Problem("SecurityPolicyNotFound", f"BackendSecurityPolicy {pkey} not found"))
        else:
            policy = policies[pkey]
            if policy.unsupported:
                problems.append(
                    Problem(policy.unsupported_reason, f"BackendSecurityPolicy {pkey}: {policy.unsupported}")
                )
            for p in policy.problems:
                problems.append(Problem(p.reason, f"BackendSecurityPolicy {pkey}: {p.message}"))
    return BackendResolution(backend, tuple(problems), policy)


# --- InferencePool


def _picker(pool: InferencePool) -> tuple[EndpointPickerConfig | None, Problem | None]:
    value = pool.metadata.annotations.get(PICKER_ANNOTATION)
    if value is None:
        return None, None
    try:
        return parse_picker_annotation(value), None
    except ValueError as e:
        return None, Problem(
            "InvalidPickerConfig",
            f"annotation {PICKER_ANNOTATION}: {e}; the pool is served with the default picker settings "
            "until it is fixed",
        )


def _valid_extension(pool: InferencePool, options: BuildOptions) -> bool:
    ext = pool.spec.extension_ref
    return SERVICE.matches(ext.group, ext.kind) and ext.name == options.extension_ref_name


def plan_pool(
    pool: InferencePool,
    snap: Snapshot,
    options: BuildOptions,
    backends: Mapping[ObjKey, BackendResolution],
) -> PoolResolution:
    """Select the pool's members, check their ports, and list what they resolve through."""
    problems: list[Problem] = []
    if not _valid_extension(pool, options):
        ext = pool.spec.extension_ref
        problems.append(
            Problem(
                "InvalidExtensionRef",
                f"extensionRef {ext.kind} {ext.name!r} is not served here: this controller "
                f"serves pools whose extensionRef is the Service {options.extension_ref_name!r}",
            )
        )
        return PoolResolution(pool, tuple(problems), ())
    ns = pool.metadata.namespace
    in_ns = sorted((k for k in backends if k.namespace == ns), key=lambda k: k.name)
    selected = tuple(k for k in in_ns if pool.selects(backends[k].backend.metadata.labels))
    members: list[MemberPlan] = []
    for key in selected:
        res = backends[key]
        if res.problems:
            problems.append(
                Problem(res.problems[0].reason, f"AIServiceBackend {key}: {res.problems[0].message}")
            )
            continue
        plan = _member_plan(pool, res, snap, options, problems)
        if plan is not None:
            members.append(plan)
    if not selected:
        sel = ",".join(f"{k}={v}" for k, v in sorted(pool.spec.selector.items())) or "<empty>"
        problems.append(
            Problem("BackendNotFound", f"selector {sel} matches no AIServiceBackend in namespace {ns}")
        )
    for m in members:
        for host in m.hostnames:
            ans = snap.dns.get(host)
            if ans is not None and ans.error is not None and not ans.ips:
                problems.append(
                    Problem(
                        "DNSResolutionFailed",
                        f"AIServiceBackend {m.backend.key}: {host} could not be resolved: {ans.error}",
                    )
                )
    picker, picker_problem = _picker(pool)
    return PoolResolution(pool, tuple(problems), tuple(members), picker, picker_problem, selected)


def _member_plan(
    pool: InferencePool,
    res: BackendResolution,
    snap: Snapshot,
    options: BuildOptions,
    problems: list[Problem],
) -> MemberPlan | None:
    bkey = res.key
    ref = res.backend.spec.backend_ref
    key = referent_key(ref, res.backend)
    port = pool.spec.target_port_number
    if ref.port is not None and ref.port != port:
        problems.append(
            Problem(
                "PortMismatch",
                f"AIServiceBackend {bkey}: backendRef port {ref.port} != targetPortNumber {port}",
            )
        )
        return None
    if views.is_service(ref):
        ports = views.service_ports(snap.services[key])
        if port not in ports:
            problems.append(
                Problem(
                    "PortMismatch",
                    f"AIServiceBackend {bkey}: Service {key} has no port {port} "
                    f"(ports: {', '.join(map(str, ports)) or 'none'})",
                )
            )
            return None
        host = service_hostname(name=ref.name, namespace=key.namespace, cluster_domain=options.cluster_domain)
        return _with_endpoints(MemberPlan(res, (host,), ()), snap.dns)
    endpoints = views.eg_endpoints(snap.eg_backends[key])
    bad = [e for e in endpoints if e.kind == "unix" or e.port != port]
    if bad:
        e = bad[0]
        what = (
            "a unix socket endpoint can't be used in a pool"
            if e.kind == "unix"
            else f"endpoint {e.address}:{e.port} does not use targetPortNumber {port}"
        )
        problems.append(Problem("PortMismatch", f"AIServiceBackend {bkey}: Backend {key}: {what}"))
        return None
    plan = MemberPlan(
        res,
        tuple(dict.fromkeys(e.address for e in endpoints if e.kind == "fqdn")),
        tuple(dict.fromkeys(e.address for e in endpoints if e.kind == "ip")),
    )
    return _with_endpoints(plan, snap.dns)


def _with_endpoints(plan: MemberPlan, dns: Mapping[str, DnsAnswer]) -> MemberPlan:
    eps = [Endpoint(ip) for ip in plan.ips]
    for host in plan.hostnames:
        eps += [Endpoint(ip, host) for ip in sorted(dns.get(host, DnsAnswer()).ips)]
    return MemberPlan(plan.backend, plan.hostnames, plan.ips, tuple(eps))


# --- InferenceModel


def resolve_models(models: Iterable[InferenceModel], pools: Mapping[ObjKey, object]) -> list[ModelResolution]:
    """Per pool, the oldest model with a name wins; the others are ``ModelNameInUse``."""
    out: list[ModelResolution] = []
    winners: dict[tuple[ObjKey, str], InferenceModel] = {}
    for m in sorted(models, key=age_order):
        ref = m.spec.pool_ref
        pkey = views.pool_key(m)
        name = m.spec.model_name
        if not InferencePool.KIND_INFO.matches(ref.group, ref.kind):
            out.append(
                ModelResolution(
                    m,
                    Problem(
                        "InvalidKind",
                        f"poolRef {ref.group}/{ref.kind} is not an {INFERENCE_GROUP} InferencePool",
                    ),
                )
            )
        elif pkey not in pools:
            out.append(ModelResolution(m, Problem("PoolNotFound", f"InferencePool {pkey} not found")))
        elif (pkey, name) in winners:
            w = winners[(pkey, name)]
            out.append(
                ModelResolution(
                    m,
                    Problem(
                        "ModelNameInUse",
                        f"modelName {name!r} is already used in InferencePool {pkey} "
                        f"by the older InferenceModel {w.ref}",
                    ),
                )
            )
        else:
            winners[(pkey, name)] = m
            out.append(ModelResolution(m, None))
    return out


# --- AIGatewayRoute


def resolve_v1_pool(pool: V1InferencePool, snap: Snapshot, options: BuildOptions) -> V1PoolResolution:
    """A v1 pool's endpoints from the snapshot's Pods, its external endpoint picker (``epp``) and its
    conditions (``controller.translate.podpool``)."""
    epp = plan_epp(pool, services=snap.services, dns=snap.dns, cluster_domain=options.cluster_domain)
    conditions = parent_conditions(pool, epp_problem=epp.problem if epp is not None else None)
    objectives = sorted(
        (o.metadata.name, o.spec.priority or 0)
        for o in snap.objectives
        if views.objective_pool_key(o) == pool.ref
    )
    return V1PoolResolution(
        pool, tuple(pool_endpoints(pool=pool, pods=snap.pods)), tuple(conditions), epp, tuple(objectives)
    )


def _v1_pool_problems(
    route: AIGatewayRoute, v1_pools: Mapping[ObjKey, V1PoolResolution], options: BuildOptions
) -> tuple[list[Problem], set[ObjKey]]:
    problems: list[Problem] = []
    ok: set[ObjKey] = set()
    for k in views.v1_pool_refs(route):
        what = f"InferencePool {k} ({INFERENCE_V1_GROUP})"
        p = v1_pools.get(k)
        if not options.enable_inference_extension:
            problems.append(
                Problem("InvalidKind", f"{what}: start the controller with --enable-inference-extension")
            )
        elif p is None:
            problems.append(Problem("BackendNotFound", f"{what} not found"))
        elif (bad := p.problem) is not None:
            problems.append(Problem("BackendNotFound", f"{what}: {bad.message}"))
        else:
            ok.add(k)
    return problems, ok


def resolve_route(
    route: AIGatewayRoute,
    *,
    gateways: frozenset[ObjKey],
    backends: Mapping[ObjKey, BackendResolution],
    pools: Mapping[ObjKey, PoolResolution],
    options: BuildOptions,
    attachments: Mapping[ObjKey, Attachment],
    v1_pools: Mapping[ObjKey, V1PoolResolution],
) -> RouteResolution:
    accepted: list[Problem] = []
    fc = route.spec.filter_config
    if fc is not None and fc.type != FilterType.EXTERNAL_PROCESSOR:
        accepted.append(Problem("UnsupportedValue", f"filterConfig.type {fc.type} is not supported"))
    targets = views.gateway_keys(route)
    missing = [k for k in targets if k not in gateways]
    if not targets or len(missing) == len(targets):
        names = ", ".join(str(k) for k in missing) or "none"
        accepted.append(
            Problem("NoMatchingParent", f"no targetRef names an existing Gateway (missing: {names})")
        )
    problems: list[Problem] = []
    ok_b: set[ObjKey] = set()
    ok_p: set[ObjKey] = set()
    fallback_b = views.fallback_only_refs(route, BackendKind.AI_SERVICE_BACKEND)
    fallback_p = views.fallback_only_refs(route, BackendKind.INFERENCE_POOL)
    for k in views.refs_of_kind(route, BackendKind.AI_SERVICE_BACKEND):
        b = backends.get(k)
        if b is None:
            problems.append(_not_found(f"AIServiceBackend {k} not found", fallback=k in fallback_b))
        elif b.problems:
            problems.append(
                _not_found(f"AIServiceBackend {k}: {b.problems[0].message}", fallback=k in fallback_b)
            )
        else:
            ok_b.add(k)
    for k in views.refs_of_kind(route, BackendKind.INFERENCE_POOL):
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
            problems.append(_not_found(f"InferencePool {k} not found", fallback=k in fallback_p))
        elif any(x.reason == "InvalidExtensionRef" for x in p.problems):
            problems.append(
                _not_found(f"InferencePool {k}: {p.problems[0].message}", fallback=k in fallback_p)
            )
        else:
            ok_p.add(k)
    v1_problems, ok_v1 = _v1_pool_problems(route, v1_pools, options)
    problems += v1_problems
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
        frozenset(ok_v1),
    )


FALLBACK_NOT_FOUND = "FallbackNotFound"


def _not_found(message: str, *, fallback: bool) -> Problem:
    """``BackendNotFound`` for a backendRef; ``FallbackNotFound`` for an object named only as a fallback (the
    pool it backs up is then served without one)."""
    if fallback:
        return Problem(FALLBACK_NOT_FOUND, f"fallback {message}; the InferencePool is served without it")
    return Problem("BackendNotFound", message)


def _cost_problems(route: AIGatewayRoute) -> dict[str, Problem]:
    """``metadataKey -> problem`` for each CEL cost that does not compile (the same compiler as the
    ext_proc's, so what passes here loads there)."""
    out: dict[str, Problem] = {}
    for i, c in enumerate(route.spec.llm_request_costs):
        if c.type != CostType.CEL:
            continue
        try:
            compile_cost(c.cel or "")
        except CostExpressionError as e:
            out[c.metadata_key] = Problem(
                "InvalidCostExpression",
                f"llmRequestCosts[{i}] ({c.metadata_key}): CEL expression {c.cel!r}: {e}",
            )
    return out


def resolve(snap: Snapshot, options: BuildOptions) -> Resolution:
    """Resolve every object of the snapshot (pure)."""
    policies = {k: resolve_policy(p, snap) for k, p in snap.security_policies.items()}
    backends = {k: resolve_backend(b, snap, policies) for k, b in snap.backends.items()}
    pools: dict[ObjKey, PoolResolution] = {}
    models: list[ModelResolution] = []
    v1_pools: dict[ObjKey, V1PoolResolution] = {}
    if options.enable_inference_extension:
        pools = {k: plan_pool(p, snap, options, backends) for k, p in snap.pools.items()}
        models = resolve_models(snap.models, snap.pools)
        v1_pools = {k: resolve_v1_pool(p, snap, options) for k, p in snap.v1_pools.items()}
    attachments = {g: attachment(g, snap, options) for g in snap.gateways}
    routes = tuple(
        resolve_route(
            r,
            gateways=snap.gateways,
            backends=backends,
            pools=pools,
            options=options,
            attachments=attachments,
            v1_pools=v1_pools,
        )
        for r in sorted(snap.routes, key=age_order)
    )
    return Resolution(
        gateway=snap.gateway,
        routes=routes,
        backends=backends,
        pools=pools,
        models=tuple(models),
        policies=policies,
        pool_parents=snap.pool_parents,
        v1_pools=v1_pools,
        v1_pool_parents=snap.v1_pool_parents,
    )


def hostnames_to_resolve(snap: Snapshot, options: BuildOptions) -> list[str]:
    """The DNS names whose answers the filter config needs (``Resolution.used_hostnames``): pool members'
    Service FQDNs and Backend FQDN endpoints."""
    return resolve(snap, options).used_hostnames()


def dns_failures(res: Resolution, dns: Mapping[str, DnsAnswer]) -> list[tuple[ObjKey, ObjKey, str, str]]:
    """``(pool, backend, hostname, error)`` for every lookup that failed (stale answers included)."""
    out = []
    for pk in sorted(res.pools):
        for m in res.pools[pk].members:
            for host in m.hostnames:
                ans = dns.get(host)
                if ans is not None and ans.error is not None:
                    out.append((pk, m.backend.key, host, ans.error))
    return out
