"""metav1 types: timestamps, metadata that keeps unknown keys, and conditions with the API's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from api.meta import Condition, ConditionStatus, ObjectMeta, format_time
from api.v1alpha1 import Status


def test_time_is_utc_with_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2025, 1, 2, 5, 4, 5, 999_999, tzinfo=plus_two)) == "2025-01-02T03:04:05Z"
    assert format_time(datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05Z"


def test_metadata_keeps_unknown_keys_and_drops_empty_collections() -> None:
    meta = ObjectMeta.model_validate(
        {
            "name": "a",
            "namespace": "default",
            "finalizers": ["x"],
            "creationTimestamp": "2025-01-02T03:04:05Z",
            "labels": {},
        }
    )
    assert meta.creation_timestamp == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert meta.to_json_dict() == {
        "name": "a",
        "namespace": "default",
        "creationTimestamp": "2025-01-02T03:04:05Z",
        "finalizers": ["x"],
    }


def _condition(**overrides: object) -> dict[str, object]:
    return {
        "type": "Accepted",
        "status": "True",
        "reason": "Accepted",
        "message": "ok",
        "lastTransitionTime": "2025-01-02T03:04:05Z",
        **overrides,
    }


def test_condition_round_trips() -> None:
    c = Condition.model_validate(_condition(observedGeneration=3))
    assert (c.status, c.observed_generation) == (ConditionStatus.TRUE, 3)
    assert c.to_json_dict() == _condition(observedGeneration=3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"status": "Yes"}, "status"),
        ({"reason": "has spaces"}, "reason"),
        ({"reason": ""}, "reason"),
        ({"type": "Not A Type"}, "type"),
        ({"observedGeneration": -1}, "observedGeneration"),
        ({"lastTransitionTime": "yesterday"}, "lastTransitionTime"),
    ],
)
def test_condition_rules(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Condition.model_validate(_condition(**overrides))
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_status_conditions_are_a_map_keyed_by_type() -> None:
    with pytest.raises(ValidationError, match="duplicate entry with type=Accepted"):
        Status.model_validate({"conditions": [_condition(), _condition(status="False")]})
    assert (
        len(Status.model_validate({"conditions": [_condition(), _condition(type="ResolvedRefs")]}).conditions)
        == 2
    )
