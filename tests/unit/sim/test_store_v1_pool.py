"""`aigw run` reads a v1 InferencePool beside a v1alpha2 one of the same name, and its pod-ips annotation (the
addresses standing in for its Pods) must hold IP addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aigw.standalone.inputs import SourcedObject
from aigw.standalone.store import POD_IPS_ANNOTATION, build_store
from aigw.standalone.translate import standalone_pods
from api.inference_v1 import QUALIFIED_KIND
from api.inference_v1 import InferencePool as V1Pool


def _obj(api_version: str, name: str, spec: dict[str, Any], **annotations: str) -> SourcedObject:
    body = {
        "apiVersion": api_version,
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": spec,
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


V1ALPHA2 = {"selector": {"app": "m"}, "targetPortNumber": 8000, "extensionRef": {"name": "envoy-ai-gateway"}}
V1 = {"selector": {"matchLabels": {"app": "m"}}, "targetPorts": [{"number": 8000}]}


def test_a_v1_and_a_v1alpha2_pool_of_one_name_both_load() -> None:
    store, errors = build_store(
        [
            _obj("inference.networking.k8s.io/v1", "p", V1, **{POD_IPS_ANNOTATION: "127.0.0.2, 127.0.0.3,"}),
            _obj("inference.networking.x-k8s.io/v1alpha2", "p", V1ALPHA2),
        ]
    )
    assert errors == []
    assert [k.name for k in store.of_kind("InferencePool")] == ["p"]
    (v1,) = store.models(V1Pool, kind=QUALIFIED_KIND).values()
    pods = standalone_pods(v1)
    assert [p["status"]["podIP"] for p in pods] == ["127.0.0.2", "127.0.0.3"]
    assert all(p["metadata"]["labels"] == {"app": "m"} for p in pods)


def test_a_bad_address_in_the_annotation_is_an_input_error() -> None:
    _, errors = build_store(
        [_obj("inference.networking.k8s.io/v1", "p", V1, **{POD_IPS_ANNOTATION: "127.0.0.2, vllm-0"})]
    )
    (error,) = errors
    assert str(error).startswith("pools.yaml (document 1): InferencePool p: annotation ")
    assert "'vllm-0' is not an IP address" in error.reason
