from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.snapshot import ConfigError, Pool, compile_bytes, load_snapshot
from tests.unit.extproc.configs import simple_config, snapshot_of


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{{{", "not valid YAML"),
        (b"- a\n", "mapping"),
        (b"version: v2\n", "unknown filter config version"),
        (b"rules: [{route: x, backendRefs: [{name: nope.ns}]}]\n", "not defined"),
        (b"bogus: 1\n", "invalid filter config"),
    ],
)
def test_bad_documents_raise_config_error_saying_why(raw: bytes, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        compile_bytes(raw, base_dir=Path("."))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_snapshot(tmp_path / "absent.yaml")


def models_of(cfg: dict[str, Any]) -> list[str]:
    return [m["id"] for m in orjson.loads(snapshot_of(cfg).models_body)["data"]]


def test_models_list_has_rule_and_pool_models_once() -> None:
    doc = orjson.loads(snapshot_of(simple_config()).models_body)
    assert doc["object"] == "list"
    # "ghost" matches the pool's rule, but the pool has no InferenceModel of that name: 404, so not listed
    assert [m["id"] for m in doc["data"]] == ["m1", "p-model"]
    assert {m["owned_by"] for m in doc["data"]} == {"Envoy AI Gateway"}


def test_models_of_a_rule_without_backends_are_not_listed() -> None:
    """The controller keeps a rule whose pool (or every backend) is gone, with no backends, so that its
    requests get 404 instead of another rule's backend: its models can't be reached."""
    cfg = simple_config()
    cfg["rules"][1]["backendRefs"] = []
    cfg["pools"] = []
    assert models_of(cfg) == ["m1"]
    cfg["rules"][0]["backendRefs"] = []
    assert models_of(cfg) == []


def _rule(route: str, refs: list[dict[str, Any]], *matches: dict[str, str]) -> dict[str, Any]:
    return {
        "route": route,
        "matches": [{"headers": [{"name": k, "value": v} for k, v in m.items()]} for m in matches],
        "backendRefs": refs,
    }


def test_models_follow_first_match_order() -> None:
    b1 = [{"name": "b1.ns"}]
    pool = [{"kind": "InferencePool", "name": "pool.ns"}]
    cfg = simple_config()
    # an empty rule for m1 first takes every request for m1: the later rule never sees them
    m1 = {"x-ai-eg-model": "m1"}
    cfg["rules"] = [_rule("ns/dead", [], m1), _rule("ns/r1", b1, m1)]
    assert models_of(cfg) == []
    # an empty rule that also needs another header only takes some requests: m1 stays reachable
    cfg["rules"][0] = _rule("ns/dead", [], {"x-ai-eg-model": "m1", "x-tenant": "a"})
    assert models_of(cfg) == ["m1"]
    # a rule with no matches takes everything after it; its pool serves p-model only
    cfg["rules"] = [_rule("ns/pool", pool), _rule("ns/r1", b1, m1)]
    assert models_of(cfg) == ["p-model"]
    # a pool rule that matches on another header first, then a backend that serves any name
    cfg["rules"] = [_rule("ns/pool", pool, {"x-tenant": "a"}), _rule("ns/r1", b1, m1)]
    assert models_of(cfg) == ["p-model", "m1"]


def test_pool_is_compiled_with_endpoints_and_weighted_targets() -> None:
    snap = snapshot_of(simple_config())
    pool = snap.rules[1].backends.items[0]
    assert isinstance(pool, Pool)
    assert [e.address for e in pool.endpoints] == ["10.0.0.1:8000", "10.0.0.2:8000"]
    assert pool.endpoints[1].hostname == "pod2.example"
    targets = pool.models["p-model"].targets
    assert targets is not None and targets.items == ("t1", "t2")


def test_credentials_are_read_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-secret\n")
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": "key"}}
    snap = snapshot_of(cfg, base_dir=tmp_path)
    upstream = snap.rules[0].backends.items[0]
    assert getattr(upstream, "auth_header", None) == ("authorization", "Bearer sk-secret")
    assert "sk-secret" not in repr(snap)
    assert snap.credential_files == (tmp_path / "key",)


def test_empty_credential_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("\n")
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"azure": {"filename": "key"}}
    with pytest.raises(ConfigError, match="empty"):
        snapshot_of(cfg, base_dir=tmp_path)


def test_cel_costs_are_compiled_and_a_bad_expression_is_a_config_error() -> None:
    cfg = simple_config()
    cfg["llmRequestCosts"].append(
        {"route": "ns/r1", "metadataKey": "cel", "type": "CEL", "cel": "input_tokens * 2 + output_tokens"}
    )
    snap = snapshot_of(cfg)
    costs = snap.rules[0].costs
    assert [c.metadata_key for c in costs] == ["tokens", "cel"]
    assert costs[0].program is None and costs[1].program is not None
    cfg["llmRequestCosts"][-1]["cel"] = "input_tokens +"
    with pytest.raises(ConfigError, match=r"ns/r1/cel: CEL expression: .*Syntax error"):
        snapshot_of(cfg)
