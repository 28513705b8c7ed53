"""``metav1.Condition`` helpers with apimachinery's rules (``pkg/api/meta/conditions.go``).

Conditions are camelCase dicts, as stored: ``type``, ``status`` (``True``/``False``/``Unknown``), ``reason``
(CamelCase), ``message``, ``observedGeneration`` and ``lastTransitionTime``. ``set_status_condition``
moves ``lastTransitionTime`` only when ``status`` changes, so repeated reconciles write identical statuses
and a no-op write can be skipped. Timestamps are RFC 3339 UTC at second precision (``metav1.Time``): any other
format would differ from what the API server echoes back and never settle.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_DNS1123_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
_TYPE = re.compile(_DNS1123_PREFIX + r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def format_time(when: datetime | None = None) -> str:
    """``when`` (default: now) as ``metav1.Time`` serialises it: ``2024-05-01T12:00:00Z``."""
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def new_condition(
    *, type: str, status: str, reason: str, message: str = "", observed_generation: int | None = None
) -> Condition:
    """A validated condition without ``lastTransitionTime`` (``set_status_condition`` stamps it)."""
    cond: Condition = {"type": type, "status": status, "reason": reason, "message": message}
    if observed_generation is not None:
        cond["observedGeneration"] = observed_generation
    validate_condition(cond)
    return cond


def validate_condition(cond: Condition) -> None:
    """Raise ``ValueError`` if ``cond`` breaks the metav1 schema (the API server would reject the write)."""
    ctype = cond.get("type", "")
    if not isinstance(ctype, str) or not _TYPE.match(ctype) or len(ctype) > 316:
        raise ValueError(f"invalid condition type {ctype!r}")
    if cond.get("status") not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(
            f"condition {ctype}: status must be True, False or Unknown, not {cond.get('status')!r}"
        )
    reason = cond.get("reason", "")
    if not isinstance(reason, str) or not _REASON.match(reason) or len(reason) > 1024:
        raise ValueError(f"condition {ctype}: invalid reason {reason!r} (CamelCase, non-empty)")
    if len(str(cond.get("message", ""))) > 32768:
        raise ValueError(f"condition {ctype}: message longer than 32768")
    gen = cond.get("observedGeneration")
    if gen is not None and (not isinstance(gen, int) or gen < 0):
        raise ValueError(f"condition {ctype}: observedGeneration must be an int >= 0")


def find_status_condition(conditions: list[Condition], type: str) -> Condition | None:
    """The condition of ``type``, or None."""
    return next((c for c in conditions if c.get("type") == type), None)


def is_status_condition_true(conditions: list[Condition], type: str) -> bool:
    """Whether the condition of ``type`` is present with status True."""
    cond = find_status_condition(conditions, type)
    return cond is not None and cond.get("status") == TRUE


def is_status_condition_false(conditions: list[Condition], type: str) -> bool:
    """Whether the condition of ``type`` is present with status False."""
    cond = find_status_condition(conditions, type)
    return cond is not None and cond.get("status") == FALSE


def set_status_condition(conditions: list[Condition], new: Condition, *, now: datetime | None = None) -> bool:
    """Merge ``new`` into ``conditions`` (in place) by type; return whether anything changed.

    Absent: appended, with ``lastTransitionTime`` = ``new``'s or now. Present: ``lastTransitionTime`` changes
    only if ``status`` does; ``reason``, ``message`` and ``observedGeneration`` are copied without touching
    it. The order of the other conditions is kept (Gateway API: never reorder conditions you don't own).
    """
    validate_condition(new)
    existing = find_status_condition(conditions, new["type"])
    if existing is None:
        cond = dict(new)
        cond.setdefault("lastTransitionTime", format_time(now))
        conditions.append(cond)
        return True
    changed = False
    if existing.get("status") != new["status"]:
        existing["status"] = new["status"]
        existing["lastTransitionTime"] = new.get("lastTransitionTime") or format_time(now)
        changed = True
    for field in ("reason", "message"):
        if existing.get(field) != new.get(field, ""):
            existing[field] = new.get(field, "")
            changed = True
    if "observedGeneration" in new and existing.get("observedGeneration") != new["observedGeneration"]:
        existing["observedGeneration"] = new["observedGeneration"]
        changed = True
    return changed


def remove_status_condition(conditions: list[Condition], type: str) -> bool:
    """Remove the condition of ``type`` (in place); return whether it was there."""
    for i, cond in enumerate(conditions):
        if cond.get("type") == type:
            del conditions[i]
            return True
    return False


def is_stale(conditions: list[Condition], type: str, observed_generation: int) -> bool:
    """Gateway API rule: if the stored condition saw a *newer* generation than ours, our view is stale."""
    cond = find_status_condition(conditions, type)
    return cond is not None and int(cond.get("observedGeneration", -1)) > observed_generation
