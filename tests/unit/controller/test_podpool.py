"""A v1 pool's endpoints follow its Pods' labels, readiness and IPs; its conditions tell the truth about the
EPP."""

from __future__ import annotations

from typing import Any

from api.inference_v1 import InferencePool
from api.meta import ConditionStatus
from controller.translate.podpool import INVALID_EXTENSION_REF, parent_conditions, pool_endpoints


def _pool(ports: list[int], **spec: Any) -> InferencePool:
    return InferencePool.read(
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "m"}},
                "targetPorts": [{"number": p} for p in ports],
                **spec,
            },
        }
    )


def _pod(
    ip: str | None,
    *,
    ns: str = "ns",
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    ready: str = "True",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"pod-{ip}",
        "namespace": ns,
        "labels": {"app": "m"} if labels is None else labels,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def _addresses(pool: InferencePool, pods: list[dict[str, Any]]) -> list[str]:
    return [e.address for e in pool_endpoints(pool=pool, pods=pods)]


def test_every_target_port_of_every_ready_pod_is_an_endpoint_sorted() -> None:
    pods = [_pod("127.0.0.12"), _pod("127.0.0.2"), _pod("::1")]
    assert _addresses(_pool([8001, 8000]), pods) == [
        "127.0.0.2:8000",
        "127.0.0.2:8001",
        "127.0.0.12:8000",
        "127.0.0.12:8001",
        "[::1]:8000",
        "[::1]:8001",
    ]


def test_pods_that_do_not_serve_are_left_out() -> None:
    pods = [
        _pod("127.0.0.2", ready="False"),
        _pod("127.0.0.3", phase="Pending"),
        _pod(None),
        _pod("not-an-ip"),
        _pod("127.0.0.4", deleting=True),
        _pod("127.0.0.5", labels={"app": "other"}),
        _pod("127.0.0.6", labels={}),
        _pod("127.0.0.7", ns="elsewhere"),
        _pod("127.0.0.8", labels={"app": "m", "extra": "x"}),
    ]
    assert _addresses(_pool([8000]), pods) == ["127.0.0.8:8000"]


def test_a_pod_without_a_ready_condition_is_not_ready() -> None:
    pod = _pod("127.0.0.2")
    pod["status"]["conditions"] = [{"type": "ContainersReady", "status": "True"}]
    assert _addresses(_pool([8000]), [pod]) == []


def test_builtin_picker_resolves() -> None:
    for spec in ({}, {"endpointPickerRef": {"name": "envoy-ai-gateway", "port": {"number": 9002}}}):
        accepted, resolved = parent_conditions(_pool([8000], **spec))
        assert (accepted.type, accepted.status) == ("Accepted", ConditionStatus.TRUE)
        assert (resolved.type, resolved.status, resolved.reason) == (
            "ResolvedRefs",
            ConditionStatus.TRUE,
            "ResolvedRefs",
        )


def test_an_usable_external_epp_resolves_and_a_problem_is_invalid_extension_ref() -> None:
    pool = _pool(
        [8000], endpointPickerRef={"name": "epp", "port": {"number": 9002}, "failureMode": "FailOpen"}
    )
    _, resolved = parent_conditions(pool)
    assert (resolved.status, resolved.reason) == (ConditionStatus.TRUE, "ResolvedRefs")
    assert "Service epp" in resolved.message and "FailOpen" in resolved.message
    _, resolved = parent_conditions(pool, epp_problem="endpointPickerRef Service epp port 9002: not found")
    assert (resolved.status, resolved.reason) == (ConditionStatus.FALSE, INVALID_EXTENSION_REF)
    assert resolved.message == "endpointPickerRef Service epp port 9002: not found"
