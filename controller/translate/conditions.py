"""The conditions emitter: the desired conditions of every object in a ``Resolution`` (pure).

Reasons (``Accepted`` / ``ResolvedRefs``, positive polarity, True reason = the type):

- AIGatewayRoute: ``Accepted`` False ``NoMatchingParent`` (no targetRef names an existing Gateway),
  ``UnsupportedValue`` (filterConfig type other than ExternalProcessor), ``ExtensionPolicyNotAccepted`` (a
  target Gateway's EnvoyExtensionPolicy was refused: the route is not served there); ``ResolvedRefs`` False
  ``BackendNotFound`` (missing AIServiceBackend/InferencePool, or one whose own references are broken),
  ``FallbackNotFound`` (a pool's ``fallback`` is missing or broken: the pool is served without it),
  ``InvalidKind`` (an InferencePool ref while the inference extension is disabled); ``PartiallyInvalid``
  (Gateway API's condition for a route served without its invalid parts) True ``InvalidCostExpression``
  when an ``llmRequestCosts`` CEL expression does not compile (the message has the compiler's error; that
  cost is left out, the rest of the route is served), else False ``Valid``.
- AIServiceBackend: ``ResolvedRefs`` False ``InvalidKind`` (backendRef not a Service or EG Backend, or a
  security policy ref of another kind), ``RefNotPermitted`` (the Service/Backend, or its policy's Secret, is
  in another namespace and no ReferenceGrant allows it; the message names the grant), ``BackendNotFound``
  (Service/Backend missing), ``SecurityPolicyNotFound``, ``SecretNotFound``, ``InvalidCredential`` (both
  through its policy).
- BackendSecurityPolicy: ``Accepted`` False ``UnsupportedValue``; ``ResolvedRefs`` False
  ``RefNotPermitted`` (a Secret in another namespace without a ReferenceGrant), ``SecretNotFound`` (the
  Secret, or the key in it, is missing; the message names both), ``InvalidCredential`` (an API key or
  access token a header can't carry, ``resolve.InvalidCredential``: the message names the Secret, the key
  and what is wrong, never the value; the backends using the policy are left out of the filter config, the
  rest of the Gateway is served), ``CredentialsNotReady`` (AWS
  ``oidcExchangeToken`` or ``AzureCredentials``: no temporary credentials issued; the credential rotation's
  own condition, ``CredentialsRotated`` (``controller.rotation``), says why).
- InferencePool, per parent Gateway: ``Accepted`` False ``InvalidPickerConfig`` (the endpoint-picker
  annotation does not parse; the pool is served with the default picker settings), else True;
  ``ResolvedRefs`` False ``InvalidExtensionRef``, ``PortMismatch`` (names the backend and the object with the
  wrong port), ``BackendNotFound`` (the selector matches nothing usable), ``DNSResolutionFailed`` (a member's
  hostname never resolved).
- v1 InferencePool (``inference.networking.k8s.io``), per parent Gateway (``status.parents``, with our
  ``controllerName``): ``Accepted`` True; ``ResolvedRefs`` False ``InvalidExtensionRef`` when it names an
  external endpoint picker (not supported yet), else True (``controller.translate.podpool``).
- InferenceModel: ``Accepted`` False ``ModelNameInUse`` (an older model of the pool has the name),
  ``PoolNotFound`` (the message names the pool), ``InvalidKind`` (poolRef not an InferencePool).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from api.inference import InferenceModel, InferencePool
from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.meta import PARTIALLY_INVALID, ConditionStatus, DesiredCondition
from api.objects import ObjKey
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controller.translate import views
from controller.translate.resolve import (
    BackendResolution,
    ModelResolution,
    PolicyResolution,
    PoolResolution,
    Problem,
    Resolution,
    RouteResolution,
    V1PoolResolution,
)

ACCEPTED: Final = "Accepted"
RESOLVED_REFS: Final = "ResolvedRefs"


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """The desired conditions of one object. For an InferencePool, ``parents`` holds one entry per Gateway and
    ``conditions`` is empty."""

    kind: str
    key: ObjKey
    generation: int
    conditions: tuple[DesiredCondition, ...] = ()
    parents: tuple[tuple[ObjKey, tuple[DesiredCondition, ...]], ...] = ()

    def problems(self) -> list[DesiredCondition]:
        out = [c for c in self.conditions if not c.ok]
        for _, conds in self.parents:
            out.extend(c for c in conds if not c.ok and c not in out)
        return out


def _true(typ: str, message: str) -> DesiredCondition:
    return DesiredCondition(typ, ConditionStatus.TRUE, typ, message)


def _cond(typ: str, problems: Sequence[Problem], ok_message: str) -> DesiredCondition:
    if not problems:
        return _true(typ, ok_message)
    message = "; ".join(dict.fromkeys(p.message for p in problems))
    return DesiredCondition(typ, ConditionStatus.FALSE, problems[0].reason, message)


def policy_status(res: PolicyResolution) -> ObjectStatus:
    p = res.policy
    accepted = (
        DesiredCondition(ACCEPTED, ConditionStatus.FALSE, res.unsupported_reason, res.unsupported)
        if res.unsupported
        else _true(ACCEPTED, f"{p.spec.type} policy accepted")
    )
    resolved = _cond(RESOLVED_REFS, res.problems, "all referenced Secrets found")
    kind = BackendSecurityPolicy.KIND_INFO.kind
    return ObjectStatus(kind, p.ref, views.generation(p), (accepted, resolved))


def backend_status(res: BackendResolution) -> ObjectStatus:
    conds = (
        _true(ACCEPTED, "backend accepted"),
        _cond(RESOLVED_REFS, res.problems, "all references resolved"),
    )
    return ObjectStatus(AIServiceBackend.KIND_INFO.kind, res.key, views.generation(res.backend), conds)


def pool_status(res: PoolResolution, parents: Iterable[ObjKey]) -> ObjectStatus:
    accepted = _cond(
        ACCEPTED,
        [res.picker_problem] if res.picker_problem else [],
        "pool is served by the built-in endpoint picker",
    )
    resolved = _cond(RESOLVED_REFS, res.problems, f"{len(res.members)} member backend(s) resolved")
    return ObjectStatus(
        InferencePool.KIND_INFO.kind,
        res.key,
        views.generation(res.pool),
        parents=tuple((gw, (accepted, resolved)) for gw in sorted(set(parents))),
    )


def v1_pool_status(res: V1PoolResolution, parents: Iterable[ObjKey]) -> ObjectStatus:
    return ObjectStatus(
        V1_POOL_KIND,
        res.key,
        views.generation(res.pool),
        parents=tuple((gw, res.conditions) for gw in sorted(set(parents))),
    )


def model_status(res: ModelResolution) -> ObjectStatus:
    m = res.model
    if res.problem is None:
        cond = _true(ACCEPTED, f"model {m.spec.model_name!r} is served by InferencePool {res.pool_key}")
    else:
        cond = DesiredCondition(ACCEPTED, ConditionStatus.FALSE, res.problem.reason, res.problem.message)
    return ObjectStatus(InferenceModel.KIND_INFO.kind, m.ref, views.generation(m), (cond,))


def route_status(res: RouteResolution) -> ObjectStatus:
    conds = (
        _cond(ACCEPTED, [*res.accepted, *res.detached], "route accepted"),
        _cond(RESOLVED_REFS, res.problems, "all backend references resolved"),
        DesiredCondition(
            PARTIALLY_INVALID,
            ConditionStatus.TRUE,
            res.invalid_costs[0].reason,
            "; ".join(p.message for p in res.invalid_costs) + "; these costs are left out",
        )
        if res.invalid_costs
        else DesiredCondition(
            PARTIALLY_INVALID, ConditionStatus.FALSE, "Valid", "every llmRequestCosts expression compiles"
        ),
    )
    return ObjectStatus(AIGatewayRoute.KIND_INFO.kind, res.key, views.generation(res.route), conds)


def statuses(res: Resolution) -> list[ObjectStatus]:
    """Desired conditions of every object resolved, in a stable order."""
    out = [route_status(r) for r in res.routes]
    out += [backend_status(res.backends[k]) for k in sorted(res.backends)]
    out += [policy_status(res.policies[k]) for k in sorted(res.policies)]
    out += [pool_status(res.pools[k], res.pool_parents.get(k, ())) for k in sorted(res.pools)]
    out += [model_status(m) for m in sorted(res.models, key=lambda m: m.model.ref)]
    out += [v1_pool_status(res.v1_pools[k], res.v1_pool_parents.get(k, ())) for k in sorted(res.v1_pools)]
    return out
