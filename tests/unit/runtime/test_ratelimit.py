"""Rate limiter invariants, named after client-go's ``default_rate_limiters_test.go``."""

from __future__ import annotations

import random

import pytest

from controller.runtime.backoff import Backoff
from controller.runtime.clock import FakeClock
from controller.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_item_exponential_failure_rate_limiter() -> None:
    limiter = ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1.0)
    assert [limiter.when("one") for _ in range(5)] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert limiter.when("two") == 0.001  # per item
    assert limiter.num_requeues("one") == 5
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 0.001


def test_item_exponential_failure_rate_limiter_caps_at_max() -> None:
    limiter = ItemExponentialFailureRateLimiter()  # 5 ms .. 1000 s
    delays = [limiter.when("x") for _ in range(25)]
    assert delays[:3] == [0.005, 0.01, 0.02]
    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655.36 s, still below the cap
    assert delays[18:] == [1000.0] * 7  # capped from the 19th failure on


def test_item_exponential_failure_rate_limiter_overflow() -> None:
    limiter = ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1000.0)
    for _ in range(5):
        limiter.when("one")
    assert limiter.when("one") == 0.032
    for _ in range(1000):
        limiter.when("overflow")
    assert limiter.when("overflow") == 1000.0


def test_bucket_rate_limiter_burst_then_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10, burst=100, clock=clock)
    assert all(limiter.when(i) == 0 for i in range(100))  # the burst
    assert limiter.when("a") == pytest.approx(0.1)  # then one token per 100 ms, reserved in turn
    assert limiter.when("b") == pytest.approx(0.2)
    clock.step(0.2)
    assert limiter.when("c") == pytest.approx(0.1)


def test_bucket_rate_limiter_refills_up_to_burst_only() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10, burst=2, clock=clock)
    clock.step(3600)
    assert [limiter.when(i) for i in range(3)] == [0, 0, pytest.approx(0.1)]


def test_bucket_rate_limiter_forget_is_noop() -> None:
    limiter = BucketRateLimiter(qps=1, burst=1, clock=FakeClock())
    limiter.when("a")
    limiter.forget("a")
    assert limiter.when("a") == pytest.approx(1.0)
    assert limiter.num_requeues("a") == 0


def test_max_of_rate_limiter() -> None:
    clock = FakeClock()
    limiter = MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1.0),
        BucketRateLimiter(qps=1, burst=2, clock=clock),
    )
    assert limiter.when("one") == 0.001
    assert limiter.when("one") == 0.002
    assert limiter.when("one") == pytest.approx(1.0)  # bucket empty: the bucket's delay wins
    assert limiter.num_requeues("one") == 3
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0


def test_default_controller_rate_limiter() -> None:
    """max(exponential 5 ms..1000 s, bucket 10 qps burst 100): 100 first failures of distinct items are free
    of the bucket; the 101st waits for a token."""
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock=clock)
    assert [limiter.when(i) for i in range(100)] == [0.005] * 100
    assert limiter.when("next") == pytest.approx(0.1)
    assert limiter.when(0) == pytest.approx(0.2)  # 2nd failure of item 0: 10 ms, but the bucket says 200 ms


def test_backoff_grows_jitters_caps_and_resets() -> None:
    clock = FakeClock()

    class NoJitter(random.Random):
        def random(self) -> float:
            return 0.0

    backoff = Backoff(initial=0.8, factor=2, jitter=1.0, cap=30, reset_after=120, clock=clock, rng=NoJitter())
    assert [backoff.next_delay() for _ in range(7)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30]
    clock.step(121)
    assert backoff.next_delay() == 0.8  # healthy for longer than reset_after: start over


def test_backoff_jitter_is_bounded() -> None:
    backoff = Backoff(initial=1.0, jitter=1.0, clock=FakeClock())
    first = backoff.next_delay()
    assert 1.0 <= first <= 2.0
