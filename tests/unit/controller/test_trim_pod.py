"""The Pod informer keeps only what v1 pool membership reads, so other Pod changes never reach a reconcile."""

from __future__ import annotations

from typing import Any

from controller.gateway.setup import trim_pod


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "a", "namespace": "ns", "labels": {"app": "vllm"}, "resourceVersion": "7",
            "annotations": {"big": "x" * 1000}, "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"containers": [{"name": "c", "image": "vllm"}]},
        "status": {
            "phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "startTime": "t",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "t1"},
                {"type": "ContainersReady", "status": "True"},
            ],
            **status,
        },
    }  # fmt: skip


def test_only_labels_phase_ip_and_readiness_are_kept() -> None:
    assert trim_pod(_pod()) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "vllm"}, "resourceVersion": "7"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_a_status_change_membership_ignores_trims_to_the_same_object() -> None:
    before, after = trim_pod(_pod()), trim_pod(_pod(startTime="later", podIPs=[]))
    assert before == after
    assert trim_pod(_pod(phase="Failed")) != before
