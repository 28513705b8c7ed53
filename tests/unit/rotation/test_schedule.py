"""When credentials are refreshed and retried: the pure schedule, at instants the tests choose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.rotation.schedule import (
    PRE_ROTATION_WINDOW,
    Failure,
    Issued,
    after_failure,
    after_success,
    plan,
    refresh_at,
    retry_delay,
)

T0 = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def issued(at: datetime = T0, lifetime: timedelta = HOUR, source: str = "s1") -> Issued:
    return Issued(issued_at=at, expires_at=at + lifetime, source=source)


def test_refresh_is_due_five_minutes_before_expiry() -> None:
    creds = issued()
    assert timedelta(minutes=5) == PRE_ROTATION_WINDOW
    assert refresh_at(creds) == T0 + timedelta(minutes=55)
    assert after_success(creds, now=T0) == 55 * 60
    # a reconcile in between (an unrelated event) comes back at the same instant
    later = T0 + timedelta(minutes=20, seconds=30)
    p = plan(current=creds, failure=None, source="s1", now=later)
    assert not p.refresh and not p.drop_expired and p.wake_in == 34 * 60 + 30
    assert plan(current=creds, failure=None, source="s1", now=T0 + timedelta(minutes=55)).refresh
    assert not plan(
        current=creds, failure=None, source="s1", now=T0 + timedelta(minutes=54, seconds=59)
    ).refresh


def test_short_lived_credentials_are_used_a_while_before_a_refresh() -> None:
    # shorter than the window: refreshing "5 minutes before expiry" would mean refreshing without pause
    assert refresh_at(issued(lifetime=timedelta(minutes=4))) == T0 + timedelta(seconds=10)
    assert refresh_at(issued(lifetime=timedelta(seconds=6))) == T0 + timedelta(seconds=3)
    assert refresh_at(issued(lifetime=timedelta(seconds=315))) == T0 + timedelta(seconds=15)


def test_nothing_issued_or_changed_inputs_refresh_at_once() -> None:
    assert plan(current=None, failure=None, source="s1", now=T0).refresh
    p = plan(current=issued(), failure=None, source="s2", now=T0 + timedelta(minutes=1))
    assert p.refresh and not p.drop_expired


def test_retry_delays_double_up_to_five_minutes() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert retry_delay(9) == 300 and retry_delay(50) == 300


def test_a_failed_refresh_keeps_the_credentials_and_backs_off() -> None:
    creds = issued()
    now = refresh_at(creds)
    failure, delay = after_failure(previous=None, source="s1", error="boom", current=creds, now=now)
    assert (failure.count, delay, failure.retry_at) == (1, 2, now + timedelta(seconds=2))
    # an event one second later does not retry early, nor drop the credentials (still valid)
    p = plan(current=creds, failure=failure, source="s1", now=now + timedelta(seconds=1))
    assert (p.refresh, p.drop_expired, p.wake_in) == (False, False, 1)
    assert plan(current=creds, failure=failure, source="s1", now=now + timedelta(seconds=2)).refresh
    second, delay2 = after_failure(previous=failure, source="s1", error="boom", current=creds, now=now)
    assert (second.count, delay2) == (2, 4)
    # the policy or its secret changed: tried at once, counting from 1 again
    assert plan(current=creds, failure=second, source="s2", now=now + timedelta(seconds=1)).refresh
    third, _ = after_failure(previous=second, source="s2", error="boom", current=creds, now=now)
    assert third.count == 1


def test_a_retry_later_than_expiry_wakes_at_expiry_to_drop_the_credentials() -> None:
    creds = issued()
    now = creds.expires_at - timedelta(seconds=30)
    failure = Failure(source="s1", count=9, error="boom", retry_at=now)
    nxt, delay = after_failure(previous=failure, source="s1", error="boom", current=creds, now=now)
    assert nxt.count == 10 and delay == 30  # not 300: the credentials expire first
    p = plan(current=creds, failure=nxt, source="s1", now=creds.expires_at)
    assert (p.refresh, p.drop_expired) == (False, True)
    assert p.wake_in == 270  # then the retry itself
    p = plan(current=creds, failure=nxt, source="s1", now=nxt.retry_at)
    assert (p.refresh, p.drop_expired) == (True, True)


def test_expired_credentials_without_failures_are_refreshed_and_dropped() -> None:
    creds = issued()
    p = plan(current=creds, failure=None, source="s1", now=creds.expires_at + timedelta(minutes=1))
    assert (p.refresh, p.drop_expired) == (True, True)
