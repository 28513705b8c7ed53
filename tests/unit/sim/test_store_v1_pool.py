"""`aigw run` refuses a v1 InferencePool with a message that says what to use instead, and keeps the rest."""

from __future__ import annotations

from pathlib import Path

from aigw.standalone.inputs import SourcedObject
from aigw.standalone.store import build_store


def _obj(api_version: str, name: str) -> SourcedObject:
    body = {
        "apiVersion": api_version,
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"app": "m"},
            "targetPortNumber": 8000,
            "extensionRef": {"name": "envoy-ai-gateway"},
        },
    }
    return SourcedObject(
        path=Path("pools.yaml"),
        document=0,
        group=api_version.split("/")[0],
        kind="InferencePool",
        namespace="default",
        name=name,
        body=body,
    )


def test_a_v1_pool_is_an_input_error_and_a_v1alpha2_pool_still_loads() -> None:
    store, errors = build_store(
        [
            _obj("inference.networking.k8s.io/v1", "gone"),
            _obj("inference.networking.x-k8s.io/v1alpha2", "kept"),
        ]
    )
    (error,) = errors
    assert str(error).startswith("pools.yaml (document 1): InferencePool gone: the Inference Extension's v1")
    assert "not supported by `aigw run` yet" in error.reason and "v1alpha2" in error.reason
    assert [k.name for k in store.of_kind("InferencePool")] == ["kept"]
