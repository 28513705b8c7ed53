"""Clocks: the real one, and a fake one that tests step by hand.

The workqueue, rate limiters, informer resync and leader election read time only through a ``Clock`` so that
unit tests can move time without sleeping (client-go injects ``clock.Clock`` for the same reason).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock with an awaitable sleep."""

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``now()`` has advanced by at least ``seconds``."""
        ...


class RealClock:
    """The event loop's clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when ``step`` or ``set`` is called.

    Sleepers are woken, in deadline order, by the step that reaches their deadline. Waking happens through
    futures, so a test must yield to the loop (``await asyncio.sleep(0)``) before woken tasks have run.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def step(self, seconds: float) -> None:
        """Advance time by ``seconds`` and wake every sleeper whose deadline has passed."""
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Move time to ``when`` (never backwards) and wake due sleepers."""
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def has_waiters(self) -> bool:
        """Whether any task is sleeping on this clock (cancelled sleeps are ignored)."""
        return any(not fut.done() for _, _, fut in self._sleepers)
