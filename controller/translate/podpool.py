"""A v1 InferencePool's endpoints from the Pods it selects, and its per-parent conditions (pure).

Membership: a Pod in the pool's namespace whose labels include every ``matchLabels`` pair, that is not being
deleted, whose phase is Running, whose ``Ready`` condition is True and that has a ``podIP``. Every target
port of every member is one endpoint (``podIP:port``), so the filter config needs no DNS. Endpoints are
sorted, so the same Pods give the same config (and the same content hash) in any order.

Conditions, per parent Gateway, with the Inference Extension's reasons: ``Accepted`` True ``Accepted``;
``ResolvedRefs`` True ``ResolvedRefs``, or False ``InvalidExtensionRef`` when the pool's external endpoint
picker can't be used (``controller.translate.epp`` says why). Our built-in picker serves a pool without an
``endpointPickerRef`` or one naming ``envoy-ai-gateway``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Final

from api import filterconfig as fc
from api.inference_v1 import InferencePool
from api.meta import ConditionStatus, DesiredCondition
from controller.translate.views import mapping

ACCEPTED: Final = "Accepted"
RESOLVED_REFS: Final = "ResolvedRefs"
INVALID_EXTENSION_REF: Final = "InvalidExtensionRef"


def selects(pool: InferencePool, pod: Mapping[str, Any]) -> bool:
    """Whether ``pod`` is in the pool's namespace and carries every label of the pool's selector."""
    meta = mapping(pod.get("metadata"))
    if meta.get("namespace") != pool.metadata.namespace:
        return False
    return pool.selects(mapping(meta.get("labels")))


def ready_ip(pod: Mapping[str, Any]) -> str | None:
    """The Pod's IP when it is serving (Running, Ready, not being deleted, a valid podIP); else None."""
    if mapping(pod.get("metadata")).get("deletionTimestamp"):
        return None
    status = mapping(pod.get("status"))
    if status.get("phase") != "Running":
        return None
    conditions = status.get("conditions") or []
    if not any(mapping(c).get("type") == "Ready" and mapping(c).get("status") == "True" for c in conditions):
        return None
    ip = status.get("podIP")
    try:
        return str(ipaddress.ip_address(ip)) if isinstance(ip, str) and ip else None
    except ValueError:
        return None


def pool_endpoints(*, pool: InferencePool, pods: Iterable[Mapping[str, Any]]) -> list[fc.Endpoint]:
    """Every ``podIP:targetPort`` of the pool's serving Pods, sorted and without repeats."""
    ips = {ip for pod in pods if selects(pool, pod) and (ip := ready_ip(pod)) is not None}
    ports = sorted({p.number for p in pool.spec.target_ports})
    addresses = sorted(
        ((ipaddress.ip_address(ip), port) for ip in ips for port in ports),
        key=lambda a: (a[0].version, a[0], a[1]),
    )
    return [fc.Endpoint(ip=str(ip), port=port) for ip, port in addresses]


def parent_conditions(pool: InferencePool, *, epp_problem: str | None = None) -> list[DesiredCondition]:
    """The pool's ``Accepted`` and ``ResolvedRefs`` conditions for each parent Gateway that routes to it;
    ``epp_problem``: why its external endpoint picker can't be used (``controller.translate.epp``)."""
    accepted = DesiredCondition(ACCEPTED, ConditionStatus.TRUE, ACCEPTED, "the pool is served by the gateway")
    ref = pool.spec.endpoint_picker_ref
    if epp_problem is not None:
        resolved = DesiredCondition(RESOLVED_REFS, ConditionStatus.FALSE, INVALID_EXTENSION_REF, epp_problem)
    elif ref is None or ref.is_builtin:
        resolved = DesiredCondition(
            RESOLVED_REFS,
            ConditionStatus.TRUE,
            RESOLVED_REFS,
            "the gateway's built-in picker chooses the Pod",
        )
    else:
        mode = ref.failure_mode.value
        resolved = DesiredCondition(
            RESOLVED_REFS,
            ConditionStatus.TRUE,
            RESOLVED_REFS,
            f"the endpoint picker Service {ref.name} chooses the Pod ({mode})",
        )
    return [accepted, resolved]
