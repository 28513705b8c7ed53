"""Router properties: the first rule with a fully matching match wins, and no input crashes it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from extproc.router import match_rule
from tests.unit.extproc.configs import snapshot_of

NAMES = st.sampled_from(["x-ai-eg-model", "x-team", "x-tier"])
VALUES = st.sampled_from(["a", "b", "c", ""])
MATCH = st.lists(st.fixed_dictionaries({"name": NAMES, "value": VALUES}), max_size=3).map(
    lambda h: {"headers": h}
)
RULES = st.lists(st.lists(MATCH, max_size=3), min_size=1, max_size=5)
HEADERS = st.dictionaries(NAMES, VALUES)


def _config(rules: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "rules": [
            {"route": f"ns/r{i}", "matches": m, "backendRefs": [{"name": "b.ns"}]}
            for i, m in enumerate(rules)
        ],
        "backends": [{"name": "b.ns", "schema": {"name": "OpenAI"}}],
    }


def _holds(match: dict[str, Any], headers: dict[str, str]) -> bool:
    return all(headers.get(h["name"]) == h["value"] for h in match["headers"])


@given(RULES, HEADERS)
def test_first_rule_with_a_fully_matching_match_wins(
    rules: list[list[dict[str, Any]]], headers: dict[str, str]
) -> None:
    snapshot = snapshot_of(_config(rules))
    got = match_rule(snapshot, headers)
    expected = next((i for i, ms in enumerate(rules) if not ms or any(_holds(m, headers) for m in ms)), None)
    assert (got.route if got else None) == (f"ns/r{expected}" if expected is not None else None)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=20)))
def test_arbitrary_headers_never_crash_the_router(headers: dict[str, str]) -> None:
    snapshot = snapshot_of(_config([[{"headers": [{"name": "x-ai-eg-model", "value": "a"}]}], []]))
    assert match_rule(snapshot, headers) is not None  # the second rule matches everything


def test_every_header_of_a_match_is_checked_not_just_the_first() -> None:
    match = {"headers": [{"name": "x-ai-eg-model", "value": "a"}, {"name": "x-team", "value": "blue"}]}
    snapshot = snapshot_of(_config([[match]]))
    assert match_rule(snapshot, {"x-ai-eg-model": "a", "x-team": "red"}) is None
    assert match_rule(snapshot, {"x-ai-eg-model": "a"}) is None
    assert match_rule(snapshot, {"x-ai-eg-model": "a", "x-team": "blue"}) is not None
