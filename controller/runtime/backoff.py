"""Jittered exponential backoff with a reset after a healthy spell (client-go's ``wait.Backoff`` manager)."""

from __future__ import annotations

import random

from controller.runtime.clock import Clock, RealClock


class Backoff:
    """Delays ``initial * factor**n`` (capped), each stretched by up to ``jitter`` times itself.

    The sequence starts over when no failure has been recorded for ``reset_after`` seconds, so one error
    after a long healthy run waits ``initial``, not the cap. Defaults are the reflector's: 800 ms, x2, jitter
    1.0, 30 s cap, reset after 2 minutes.
    """

    def __init__(
        self,
        *,
        initial: float = 0.8,
        factor: float = 2.0,
        jitter: float = 1.0,
        cap: float = 30.0,
        reset_after: float = 120.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._initial = initial
        self._factor = factor
        self._jitter = jitter
        self._cap = cap
        self._reset_after = reset_after
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._current = initial
        self._last_failure: float | None = None

    def next_delay(self) -> float:
        """Record one failure and return how long to wait before retrying."""
        now = self._clock.now()
        if self._last_failure is not None and now - self._last_failure > self._reset_after:
            self._current = self._initial
        self._last_failure = now
        base = self._current
        self._current = min(self._cap, self._current * self._factor)
        return base + self._rng.random() * self._jitter * base

    def reset(self) -> None:
        """Start over from ``initial`` at the next failure."""
        self._current = self._initial
        self._last_failure = None
