"""When to refresh temporary credentials, and what to say about them (pure: the caller passes ``now``).

A refresh is due ``PRE_ROTATION_WINDOW`` (5 minutes, upstream's ``preRotationWindow``) before the credentials
expire, at once when none were issued or they were issued from other inputs (``Issued.source`` differs: the
policy or its client secret changed). A failed refresh is retried after ``retry_delay`` (2 s doubling to 5
minutes); the credentials issued before stay in use until they expire, and are removed then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PRE_ROTATION_WINDOW = timedelta(minutes=5)
MIN_USE = timedelta(seconds=10)
"""Credentials are used at least this long (or half their lifetime when shorter) before a refresh, so that
credentials that live less than the window do not make the controller refresh without pause."""
RETRY_INITIAL = 2.0
RETRY_CAP = 300.0


@dataclass(frozen=True, slots=True)
class Issued:
    """Credentials the rotation issued: when, until when, and a fingerprint of the inputs they came from."""

    issued_at: datetime
    expires_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The last refreshes failed: how many in a row (for the same inputs), the error, when to retry."""

    source: str
    count: int
    error: str
    retry_at: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What a reconcile does now: refresh or not, remove expired credentials or not, and (when not
    refreshing) how many seconds until it should run again (None: only when something changes)."""

    refresh: bool
    drop_expired: bool
    wake_in: float | None


def refresh_at(issued: Issued, *, window: timedelta = PRE_ROTATION_WINDOW) -> datetime:
    """``window`` before expiry, but not before ``min(MIN_USE, lifetime / 2)`` after issue."""
    lifetime = issued.expires_at - issued.issued_at
    return max(issued.expires_at - window, issued.issued_at + min(MIN_USE, lifetime / 2))


def retry_delay(failures: int) -> float:
    """Seconds before retry number ``failures`` (1, 2, ...): ``RETRY_INITIAL`` doubling, capped at
    ``RETRY_CAP``."""
    return min(RETRY_CAP, RETRY_INITIAL * 2.0 ** max(0, failures - 1))


def _seconds(until: datetime, now: datetime) -> float:
    return max(0.0, (until - now).total_seconds())


def plan(
    *,
    current: Issued | None,
    failure: Failure | None,
    source: str,
    now: datetime,
    window: timedelta = PRE_ROTATION_WINDOW,
) -> Plan:
    """What to do at ``now`` with the ``current`` credentials (None: none issued), the last ``failure`` (None:
    the last refresh succeeded) and the fingerprint of the current inputs.

    A pending retry is honoured only while the inputs are those that failed: a changed policy or client secret
    is tried at once."""
    expired = current is not None and current.expires_at <= now
    backing_off = failure is not None and failure.source == source and now < failure.retry_at
    due = current is None or expired or current.source != source or now >= refresh_at(current, window=window)
    if due and not backing_off:
        return Plan(refresh=True, drop_expired=expired, wake_in=None)
    wakes: list[datetime] = []
    if backing_off and failure is not None:
        wakes.append(failure.retry_at)
    if current is not None and not expired:
        wakes.append(current.expires_at if due else refresh_at(current, window=window))
    return Plan(refresh=False, drop_expired=expired, wake_in=_seconds(min(wakes), now) if wakes else None)


def after_success(issued: Issued, *, now: datetime, window: timedelta = PRE_ROTATION_WINDOW) -> float:
    """Seconds until the next refresh of freshly ``issued`` credentials (the reconcile's ``RequeueAfter``)."""
    return _seconds(refresh_at(issued, window=window), now)


def after_failure(
    *, previous: Failure | None, source: str, error: str, current: Issued | None, now: datetime
) -> tuple[Failure, float]:
    """The failure to remember and the seconds until the next attempt: the retry delay, or sooner when the
    current credentials expire before it (to remove them on time)."""
    count = previous.count + 1 if previous is not None and previous.source == source else 1
    delay = retry_delay(count)
    failure = Failure(source=source, count=count, error=error, retry_at=now + timedelta(seconds=delay))
    if current is not None and current.expires_at > now:
        delay = min(delay, _seconds(current.expires_at, now))
    return failure, delay
