"""The committed CRDs (config/crd for kustomize, the CRD chart's crds/ for Helm) are exactly what the models
generate, and they are structural and complete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import crdgen
from api.kinds import CRD_KINDS

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "config" / "crd"
CHART_CRD_DIR = REPO_ROOT / "charts" / "ai-gateway-py-crds" / "crds"

GENERATED = crdgen.render_all()
CRDS = {name: yaml.safe_load(text) for name, text in GENERATED.items()}


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[]")


def _at(crd_file: str, path: str) -> dict[str, Any]:
    return dict(_nodes(_schema(CRDS[crd_file])))[path]


@pytest.mark.parametrize("directory", [CRD_DIR, CHART_CRD_DIR], ids=lambda d: str(d.relative_to(REPO_ROOT)))
def test_committed_crds_match_the_models(directory: Path) -> None:
    rel = directory.relative_to(REPO_ROOT)
    committed = {p.name: p.read_text() for p in directory.iterdir()}
    stale = sorted(set(committed) - set(GENERATED))
    assert not stale, f"{rel} has files the models no longer generate: {stale}; delete them"
    for name, text in GENERATED.items():
        assert committed.get(name) == text, f"{rel}/{name} differs from the models: run `make manifests`"


def test_the_makefile_generates_both_crd_directories() -> None:
    recipe = (REPO_ROOT / "Makefile").read_text().split("\nmanifests:", 1)[1].split("\n\n", 1)[0]
    assert "-m api.crdgen config/crd charts/ai-gateway-py-crds/crds" in recipe


def test_generation_is_deterministic() -> None:
    assert crdgen.render_all() == GENERATED


def test_file_names_follow_group_and_plural() -> None:
    assert set(GENERATED) == {
        "aigateway.envoyproxy.io_aigatewayroutes.yaml",
        "aigateway.envoyproxy.io_aiservicebackends.yaml",
        "aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
        "inference.networking.x-k8s.io_inferencepools.yaml",
        "inference.networking.x-k8s.io_inferencemodels.yaml",
    }


def test_write_all_twice_leaves_the_files_unchanged(tmp_path: Path) -> None:
    crdgen.write_all(tmp_path)
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    crdgen.write_all(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == first
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == GENERATED


def test_main_requires_a_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_main_writes_the_same_crds_into_every_directory(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    for sub in ("a", "b"):
        assert {p.name: p.read_text() for p in (tmp_path / sub).iterdir()} == GENERATED


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_crd_has_status_printer_columns_and_categories(name: str) -> None:
    spec = CRDS[name]["spec"]
    version = spec["versions"][0]
    assert spec["scope"] == "Namespaced"
    assert version["subresources"] == {"status": {}}
    assert version["served"] and version["storage"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Age" in columns
    assert "ai-gateway" in spec["names"]["categories"]
    assert spec["names"]["shortNames"]
    assert CRDS[name]["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"


@pytest.mark.parametrize("name", sorted(n for n in CRDS if n.startswith("aigateway")))
def test_our_kinds_show_the_accepted_status(name: str) -> None:
    columns = {
        c["name"]: c["jsonPath"] for c in CRDS[name]["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Status"] == '.status.conditions[?(@.type=="Accepted")].status'


def test_inference_model_columns() -> None:
    columns = CRDS["inference.networking.x-k8s.io_inferencemodels.yaml"]["spec"]["versions"][0][
        "additionalPrinterColumns"
    ]
    assert [(c["name"], c["jsonPath"]) for c in columns] == [
        ("Model Name", ".spec.modelName"),
        ("Inference Pool", ".spec.poolRef.name"),
        ("Criticality", ".spec.criticality"),
        ("Age", ".metadata.creationTimestamp"),
    ]


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schemas_are_structural(name: str) -> None:
    for path, node in _nodes(_schema(CRDS[name])):
        assert "$ref" not in node and "const" not in node and "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node and "allOf" not in node, path
            assert node.get("type") in {"object", "array", "string", "integer", "boolean", "number"}, path


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_field_of_spec_is_documented(name: str) -> None:
    spec = _schema(CRDS[name])["properties"]["spec"]
    undocumented = [
        p
        for p, n in _nodes(spec, "spec")
        if not n.get("description") and not (p.endswith("[]") and n.get("type") != "object")
    ]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(CRDS))
def test_cel_iterated_lists_have_max_items(name: str) -> None:
    # The API server rejects CEL rules whose worst-case cost is unbounded.
    for path, node in _nodes(_schema(CRDS[name])):
        if node.get("type") == "array":
            assert "maxItems" in node, path


def _cel_rules() -> list[tuple[str, str, dict[str, str]]]:
    return [
        (name, path, rule)
        for name, crd in CRDS.items()
        for path, node in _nodes(_schema(crd))
        for rule in node.get("x-kubernetes-validations", [])
    ]


def test_at_least_six_cel_rules_all_with_messages() -> None:
    rules = _cel_rules()
    assert len(rules) >= 6
    for name, path, rule in rules:
        assert rule["message"] and rule["message"] != rule["rule"], (name, path)


@pytest.mark.parametrize(
    ("crd_file", "path", "message"),
    [
        ("aigateway.envoyproxy.io_aigatewayroutes.yaml", ".spec.schema", "only the OpenAI schema"),
        (
            "aigateway.envoyproxy.io_aigatewayroutes.yaml",
            ".spec.rules[].matches[].headers",
            "currently only exact match is supported",
        ),
        (
            "inference.networking.x-k8s.io_inferencemodels.yaml",
            ".spec.targetModels",
            "Weights should be set for all models, or none of the models.",
        ),
        ("inference.networking.x-k8s.io_inferencemodels.yaml", ".spec.modelName", "modelName is immutable"),
        (
            "aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
            ".spec",
            "apiKey must be set when type is APIKey",
        ),
        (
            "aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
            ".spec",
            "awsCredentials must be set when type is AWSCredentials",
        ),
        (
            "aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
            ".spec",
            "azureCredentials must be set when type is AzureCredentials",
        ),
        ("aigateway.envoyproxy.io_aiservicebackends.yaml", ".spec.backendRef", "Service or an Envoy Gateway"),
    ],
)
def test_named_cel_rules_are_where_they_belong(crd_file: str, path: str, message: str) -> None:
    messages = [r["message"] for r in _at(crd_file, path).get("x-kubernetes-validations", [])]
    assert any(message in m for m in messages), messages


def test_route_backend_ref_kind_is_an_enum_with_a_default() -> None:
    node = _at("aigateway.envoyproxy.io_aigatewayroutes.yaml", ".spec.rules[].backendRefs[].kind")
    assert node["enum"] == ["AIServiceBackend", "InferencePool"]
    assert node["default"] == "AIServiceBackend"
    weight = _at("aigateway.envoyproxy.io_aigatewayroutes.yaml", ".spec.rules[].backendRefs[].weight")
    assert (weight["default"], weight["minimum"]) == (1, 0)


def test_route_limits_and_list_map_keys() -> None:
    route = "aigateway.envoyproxy.io_aigatewayroutes.yaml"
    assert _at(route, ".spec.targetRefs")["minItems"] == 1
    assert _at(route, ".spec.targetRefs")["maxItems"] == 128
    assert _at(route, ".spec.rules")["maxItems"] == 128
    assert _at(route, ".spec.llmRequestCosts")["maxItems"] == 36
    headers = _at(route, ".spec.rules[].matches[].headers")
    assert (
        headers["maxItems"],
        headers["x-kubernetes-list-type"],
        headers["x-kubernetes-list-map-keys"],
    ) == (
        16,
        "map",
        ["name"],
    )
    assert set(_schema(CRDS[route])["properties"]["spec"]["required"]) == {"targetRefs", "schema", "rules"}
    conditions = _at(route, ".status.conditions")
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_security_policy_spec_limits_credentials_by_cel_not_max_properties() -> None:
    # maxProperties would pre-empt the CEL rule with a message that names neither the fields nor the fix.
    spec = _at("aigateway.envoyproxy.io_backendsecuritypolicies.yaml", ".spec")
    assert "maxProperties" not in spec
    assert any("only one of apiKey" in r["message"] for r in spec["x-kubernetes-validations"])
    assert spec["properties"]["type"]["enum"] == ["APIKey", "AWSCredentials", "AzureCredentials"]
    azure = spec["properties"]["azureCredentials"]
    assert azure["properties"]["clientID"]["minLength"] == 1
    assert azure["properties"]["tenantID"]["minLength"] == 1


def test_inference_pool_defaults_and_limits() -> None:
    pool = "inference.networking.x-k8s.io_inferencepools.yaml"
    ext = _at(pool, ".spec.extensionRef")
    assert ext["properties"]["failureMode"]["default"] == "FailClose"
    assert ext["properties"]["kind"]["default"] == "Service"
    assert ext["properties"]["group"]["default"] == ""
    port = _at(pool, ".spec.targetPortNumber")
    assert (port["minimum"], port["maximum"]) == (1, 65535)
    assert _at(pool, ".spec.selector[]")["maxLength"] == 63
    assert _at(pool, ".status.parent")["maxItems"] == 32
    default = _at(pool, ".status.parent[].conditions")["default"]
    assert default == [
        {
            "type": "Accepted",
            "status": "Unknown",
            "lastTransitionTime": "1970-01-01T00:00:00Z",
            "reason": "Pending",
            "message": "Waiting for controller",
        }
    ]


def test_inference_model_defaults_and_limits() -> None:
    model = "inference.networking.x-k8s.io_inferencemodels.yaml"
    assert _at(model, ".spec.modelName")["maxLength"] == 256
    assert _at(model, ".spec.targetModels")["maxItems"] == 10
    weight = _at(model, ".spec.targetModels[].weight")
    assert (weight["minimum"], weight["maximum"]) == (1, 1_000_000)
    assert "default" not in _at(model, ".spec.criticality")
    pool_ref = _at(model, ".spec.poolRef")["properties"]
    assert pool_ref["group"]["default"] == "inference.networking.x-k8s.io"
    assert pool_ref["kind"]["default"] == "InferencePool"


def test_crd_kinds_are_the_five() -> None:
    assert [k.KIND_INFO.kind for k in CRD_KINDS] == [
        "AIGatewayRoute",
        "AIServiceBackend",
        "BackendSecurityPolicy",
        "InferencePool",
        "InferenceModel",
    ]
