"""metav1 condition rules: lastTransitionTime moves only when status changes; validation; stale checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.runtime.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    find_status_condition,
    format_time,
    is_stale,
    is_status_condition_false,
    is_status_condition_true,
    new_condition,
    remove_status_condition,
    set_status_condition,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def accepted(status: str = TRUE, reason: str = "Accepted", message: str = "", gen: int = 1) -> Condition:
    return new_condition(
        type="Accepted", status=status, reason=reason, message=message, observed_generation=gen
    )


def test_format_time_is_rfc3339_utc_seconds() -> None:
    assert format_time(T0) == "2024-05-01T12:00:00Z"
    assert format_time(T0.astimezone(timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00Z"
    with pytest.raises(ValueError):
        format_time(datetime(2024, 5, 1))  # naive


def test_set_appends_with_transition_time() -> None:
    conditions: list[Condition] = []
    assert set_status_condition(conditions, accepted(), now=T0)
    assert conditions == [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "",
            "observedGeneration": 1,
            "lastTransitionTime": "2024-05-01T12:00:00Z",
        }
    ]


def test_transition_time_moves_only_when_status_changes() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, accepted(), now=T0)
    assert set_status_condition(conditions, accepted(message="new message", gen=2), now=T1)
    assert conditions[0]["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert conditions[0]["message"] == "new message" and conditions[0]["observedGeneration"] == 2
    assert set_status_condition(conditions, accepted(FALSE, "BackendNotFound", gen=2), now=T1)
    assert conditions[0]["lastTransitionTime"] == "2024-05-01T12:05:00Z"


def test_identical_set_reports_no_change() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, accepted(), now=T0)
    assert not set_status_condition(conditions, accepted(), now=T1)


def test_other_conditions_keep_their_order() -> None:
    conditions: list[Condition] = []
    set_status_condition(
        conditions, new_condition(type="ResolvedRefs", status=TRUE, reason="ResolvedRefs"), now=T0
    )
    set_status_condition(conditions, accepted(), now=T0)
    set_status_condition(conditions, accepted(UNKNOWN, "Pending"), now=T1)
    assert [c["type"] for c in conditions] == ["ResolvedRefs", "Accepted"]


def test_find_true_false_remove() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, accepted(FALSE, "NoMatchingParent"), now=T0)
    assert is_status_condition_false(conditions, "Accepted")
    assert not is_status_condition_true(conditions, "Accepted")
    assert not is_status_condition_true(conditions, "Missing")
    assert find_status_condition(conditions, "Accepted") is conditions[0]
    assert remove_status_condition(conditions, "Accepted")
    assert not remove_status_condition(conditions, "Accepted")
    assert conditions == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "Accepted", "status": "Yes", "reason": "Accepted"},
        {"type": "Accepted", "status": TRUE, "reason": ""},
        {"type": "Accepted", "status": TRUE, "reason": "not camel"},
        {"type": "Accepted", "status": TRUE, "reason": "Trailing,"},
        {"type": "bad type!", "status": TRUE, "reason": "Accepted"},
        {"type": "Accepted", "status": TRUE, "reason": "Accepted", "observed_generation": -1},
    ],
)
def test_invalid_conditions_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        new_condition(**kwargs)  # type: ignore[arg-type]


def test_prefixed_type_is_valid() -> None:
    new_condition(type="aigateway.envoyproxy.io/Ready", status=TRUE, reason="Ready")


def test_stale_when_stored_generation_is_newer() -> None:
    conditions: list[Condition] = []
    set_status_condition(conditions, accepted(gen=3), now=T0)
    assert is_stale(conditions, "Accepted", 2)
    assert not is_stale(conditions, "Accepted", 3)
    assert not is_stale(conditions, "Missing", 1)
