"""Every sample in config/samples parses into the models, and together they show every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.inference import InferenceModel, InferencePool
from api.kinds import ALL_KINDS, kind_for, parse_object
from api.shared import BackendKind, Criticality
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend

SAMPLES = Path(__file__).resolve().parents[3] / "config" / "samples"
UNMODELLED = {
    ("v1", "Secret"),
    ("v1", "Service"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


SAMPLE_FILES = sorted(SAMPLES.glob("*.yaml"))
DOCS = [(f.name, d) for f in SAMPLE_FILES for d in _docs(f)]


def test_there_are_samples() -> None:
    assert {f.name for f in SAMPLE_FILES} >= {"gateway.yaml", "basic.yaml", "inference_extension.yaml"}


@pytest.mark.parametrize(
    ("file", "doc"), DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS]
)
def test_every_sample_parses(file: str, doc: dict[str, Any]) -> None:
    assert doc["metadata"].get("namespace", "default") == "default"
    if kind_for(doc["apiVersion"], doc["kind"]) is None:
        assert (doc["apiVersion"], doc["kind"]) in UNMODELLED, f"{file}: a kind nobody models"
        return
    obj = parse_object(doc)
    # Parsing keeps what the manifest says: dumping and re-parsing gives the same object.
    assert parse_object(obj.to_json_dict()) == obj


def test_samples_cover_every_modelled_kind() -> None:
    kinds = {d["kind"] for _, d in DOCS}
    assert {k.KIND_INFO.kind for k in ALL_KINDS} <= kinds


def test_inference_extension_sample_wires_route_pool_backends_and_models() -> None:
    objs = [
        parse_object(d)
        for d in _docs(SAMPLES / "inference_extension.yaml")
        if kind_for(d["apiVersion"], d["kind"])
    ]
    route = next(o for o in objs if isinstance(o, AIGatewayRoute))
    pool = next(o for o in objs if isinstance(o, InferencePool))
    backends = [o for o in objs if isinstance(o, AIServiceBackend)]
    models = [o for o in objs if isinstance(o, InferenceModel)]

    pool_refs = [
        r for rule in route.spec.rules for r in rule.backend_refs if r.kind == BackendKind.INFERENCE_POOL
    ]
    assert [r.name for r in pool_refs] == [pool.metadata.name]
    selected = [b for b in backends if pool.spec.selector.items() <= b.metadata.labels.items()]
    assert len(selected) == 2
    assert all(m.spec.pool_ref.name == pool.metadata.name for m in models)
    weighted = [m for m in models if m.spec.target_models and all(t.weight for t in m.spec.target_models)]
    assert weighted, "an InferenceModel with weighted targetModels"
    assert any(m.spec.criticality == Criticality.SHEDDABLE for m in models)
