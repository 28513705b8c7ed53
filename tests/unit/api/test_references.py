"""The reference rules ``api/`` states once for every reader: which kind a group and kind name, where a
reference without a namespace points, which labels a pool selects, and the Gateway API's age order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.corev1 import SERVICE
from api.envoygateway import Backend
from api.gatewayapi import GATEWAY, BackendObjectReference, SecretObjectReference, referent_key
from api.inference import InferencePool
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import ObjKey, age_order, core_group
from api.v1alpha1 import AIServiceBackend


def test_the_core_group_may_be_spelled_core() -> None:
    assert core_group("core") == "" and core_group("") == "" and core_group("apps") == "apps"
    assert SERVICE.matches("", "Service") and SERVICE.matches("core", "Service")
    assert not SERVICE.matches("apps", "Service") and not SERVICE.matches("", "Secret")
    assert Backend.KIND_INFO.matches("gateway.envoyproxy.io", "Backend")
    assert not Backend.KIND_INFO.matches("", "Backend") and not GATEWAY.matches("core", "Gateway")


def _backend(namespace: str) -> AIServiceBackend:
    return AIServiceBackend.parse(
        {
            "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
            "kind": "AIServiceBackend",
            "metadata": {"name": "b", "namespace": namespace},
            "spec": {"schema": {"name": "OpenAI"}, "backendRef": {"name": "svc", "port": 80}},
        }
    )


def test_a_reference_without_namespace_points_into_the_referrers() -> None:
    referrer = _backend("team-a")
    assert referent_key(BackendObjectReference(name="svc", port=80), referrer) == ObjKey("team-a", "svc")
    assert referent_key(SecretObjectReference(name="s", namespace="vault"), referrer) == ObjKey("vault", "s")


def _pool(selector: dict[str, str]) -> InferencePool:
    doc: dict[str, Any] = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferencePool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"selector": selector, "targetPortNumber": 8000, "extensionRef": {"name": "epp"}},
    }
    return InferencePool.parse(doc)


def test_a_pool_selects_objects_carrying_every_label_of_its_selector() -> None:
    pool = _pool({"app": "vllm", "tier": "gpu"})
    assert pool.selects({"app": "vllm", "tier": "gpu", "extra": "x"})
    assert not pool.selects({"app": "vllm"}) and not pool.selects({"app": "vllm", "tier": "cpu"})
    v1 = V1InferencePool.read(
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "vllm"}},
                "targetPorts": [{"number": 8000}],
                "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
            },
        }
    )
    assert v1.selects({"app": "vllm", "x": "y"}) and not v1.selects({"app": "sglang"})


def test_the_age_order_is_oldest_first_then_namespace_and_name() -> None:
    def at(ns: str, name: str, ts: str | None) -> AIServiceBackend:
        b = _backend(ns)
        created = datetime.fromisoformat(ts).replace(tzinfo=UTC) if ts else None
        meta = b.metadata.model_copy(update={"name": name, "creation_timestamp": created})
        return b.model_copy(update={"metadata": meta})

    objs = [
        at("b", "x", "2024-01-02"),
        at("a", "y", "2024-01-02"),
        at("z", "z", "2024-01-01"),
        at("q", "q", None),
    ]
    assert [str(o.ref) for o in sorted(objs, key=age_order)] == ["q/q", "z/z", "a/y", "b/x"]
