"""The v1 InferencePool and v1alpha2 InferenceObjective models read what the Inference Extension's CRDs
admit."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import InvalidObjectError
from api.inference_v1 import ExtensionFailureMode, InferenceObjective, InferencePool


def _pool(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": "m"}}, "targetPorts": [{"number": 8000}], **spec},
    }


def test_pool_with_external_epp_reads_every_field() -> None:
    pool = InferencePool.read(
        _pool(endpointPickerRef={"name": "epp", "port": {"number": 9002}, "failureMode": "FailOpen"})
    )
    ref = pool.spec.endpoint_picker_ref
    assert ref is not None and ref.name == "epp" and ref.port is not None and ref.port.number == 9002
    assert ref.failure_mode is ExtensionFailureMode.FAIL_OPEN
    assert not ref.is_builtin and not pool.spec.uses_builtin_picker
    assert pool.spec.selector.match_labels == {"app": "m"}


def test_builtin_picker_by_name_or_by_absence() -> None:
    named = InferencePool.read(
        _pool(endpointPickerRef={"name": "envoy-ai-gateway", "port": {"number": 9002}})
    )
    assert named.spec.uses_builtin_picker
    assert InferencePool.read(_pool()).spec.uses_builtin_picker
    other_kind = InferencePool.read(_pool(endpointPickerRef={"name": "envoy-ai-gateway", "kind": "Other"}))
    assert not other_kind.spec.uses_builtin_picker


def test_fields_of_newer_crds_are_ignored_not_rejected() -> None:
    pool = InferencePool.parse(_pool(futureField=1) | {"status": {"parents": []}})
    assert pool.spec.target_ports[0].number == 8000


def test_a_pool_without_target_ports_is_invalid() -> None:
    with pytest.raises(InvalidObjectError, match="targetPorts"):
        InferencePool.parse(_pool(targetPorts=[]))


def test_objective_defaults_its_pool_ref_to_the_v1_pool() -> None:
    obj = InferenceObjective.read(
        {
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferenceObjective",
            "metadata": {"name": "sheddable", "namespace": "ns"},
            "spec": {"priority": -1, "poolRef": {"name": "p"}},
        }
    )
    assert obj.spec.priority == -1
    assert (obj.spec.pool_ref.group, obj.spec.pool_ref.kind) == (
        "inference.networking.k8s.io",
        "InferencePool",
    )
