"""Rate limiters for the workqueue, with client-go's semantics (``util/workqueue/default_rate_limiters.go``).

A rate limiter answers ``when(item)``: how long to wait before the item may be processed again.
``forget(item)`` clears the item's failure history (called on success); ``num_requeues(item)`` reports it.

The project default is client-go's ``DefaultControllerRateLimiter``: the maximum of a per-item exponential
backoff (5 ms doubling to 1000 s) and one token bucket shared by all items (10 qps, burst 100).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from controller.runtime.clock import Clock, RealClock


class RateLimiter(Protocol):
    """Decides the delay before an item is retried."""

    def when(self, item: Hashable) -> float:
        """The delay in seconds before ``item`` may be retried; records one more failure."""
        ...

    def forget(self, item: Hashable) -> None:
        """Stop tracking ``item``: its next failure starts from the base delay again."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """How many failures of ``item`` have been recorded since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """``base * 2**failures`` per item, capped at ``max_delay``: 5 ms, 10 ms, 20 ms, ... up to 1000 s."""

    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self._base = base_delay
        self._max = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        # Cap the exponent before computing, as client-go does, so that huge failure counts cannot overflow.
        if exp > 62:
            return self._max
        return min(self._base * float(1 << exp), self._max)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """One token bucket for all items (``golang.org/x/time/rate`` Reserve().Delay()).

    Every ``when`` call takes a token, even when it has to wait for it: the bucket's balance may go negative,
    and the delay is the time until the balance is back to zero. It tracks no items, so ``forget`` is a no-op.
    """

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock or RealClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, item: Hashable) -> float:
        now = self._clock.now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._qps

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters; ``forget`` forgets in all; ``num_requeues`` is the maximum."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: Hashable) -> float:
        # Every limiter must see the failure (the bucket consumes a token), so no short-circuit.
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_controller_rate_limiter(*, clock: Clock | None = None) -> RateLimiter:
    """client-go's ``DefaultControllerRateLimiter``: max(exponential(5 ms, 1000 s), bucket(10 qps, 100))."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
