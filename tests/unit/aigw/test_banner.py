"""What ``aigw run`` says about the routed models: each model once, where it really goes, and a warning for
every match that an earlier rule makes unreachable."""

from __future__ import annotations

from typing import Any

from aigw.standalone.banner import routed_models, shadowed_matches
from api.filterconfig import FilterConfig


def _rule(route: str, backend: str, *matches: dict[str, str]) -> dict[str, Any]:
    return {
        "route": route,
        "matches": [{"headers": [{"name": k, "value": v} for k, v in m.items()]} for m in matches],
        "backendRefs": [{"name": backend}],
    }


def _config(*rules: dict[str, Any]) -> FilterConfig:
    backends = sorted({r["backendRefs"][0]["name"] for r in rules})
    return FilterConfig.model_validate(
        {
            "version": "v1",
            "rules": list(rules),
            "backends": [{"name": b, "schema": {"name": "OpenAI"}} for b in backends],
        }
    )


def test_a_model_claimed_by_two_routes_is_listed_once_where_it_goes_and_warned_about() -> None:
    cfg = _config(
        _rule("default/claim", "dead.default", {"x-ai-eg-model": "gpt-4o-mini"}),
        _rule("default/demo", "openai.default", {"x-ai-eg-model": "gpt-4o-mini"}, {"x-ai-eg-model": "other"}),
    )
    assert routed_models(cfg) == [
        ("gpt-4o-mini", "AIServiceBackend dead.default"),
        ("other", "AIServiceBackend openai.default"),
    ]
    (warning,) = shadowed_matches(cfg)
    assert warning.startswith(
        "AIGatewayRoute default/demo: the match x-ai-eg-model=gpt-4o-mini is never used"
    )
    assert "AIGatewayRoute default/claim" in warning


def test_a_narrower_match_first_shadows_nothing_and_a_catch_all_shadows_everything_after_it() -> None:
    narrow_first = _config(
        _rule("ns/a", "a.ns", {"x-ai-eg-model": "m", "x-tenant": "gold"}),
        _rule("ns/b", "b.ns", {"x-ai-eg-model": "m"}),
    )
    assert shadowed_matches(narrow_first) == []
    catch_all = _config(
        {"route": "ns/all", "matches": [], "backendRefs": [{"name": "a.ns"}]},
        _rule("ns/b", "b.ns", {"X-AI-EG-Model": "m"}),
    )
    assert [w.split(":")[0] for w in shadowed_matches(catch_all)] == ["AIGatewayRoute ns/b"]
