"""A workqueue with client-go's contract (``util/workqueue``), for asyncio.

Contract:
- **Fair**: items are handed out in the order they were added (FIFO).
- **Stingy**: an item is never handed to two workers at once, and repeated adds before it is processed
  collapse into one.
- **Multiple producers and consumers**: an item added again while it is being processed is processed once more
  after ``done``.
- **Delays**: ``add_after(x, d)`` makes ``x`` ready after ``d`` seconds. Like controller-runtime's priority
  queue there is one entry per item: the earliest ready time wins, and an item that is ready beats one that
  is waiting (a plain ``add`` cancels a pending delayed entry, because the item is processed now anyway).
- **Rate limiting**: ``add_rate_limited(x)`` = ``add_after(x, limiter.when(x))``; ``forget(x)`` on success.
- **Shutdown**: ``shutdown()`` drops new adds and lets workers take what is queued, then ``get`` raises
  ``ShutDown``; ``shutdown_with_drain()`` also waits until every handed-out item is ``done``.

Workers must call ``done(x)`` for every item ``get`` returned, in a ``finally``. Everything runs on one event
loop, so no locks: every method except ``get`` and ``shutdown_with_drain`` is synchronous and never blocks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from controller.runtime.clock import Clock, RealClock
from controller.runtime.ratelimit import RateLimiter, default_controller_rate_limiter

T = TypeVar("T", bound=Hashable)

MAX_WAIT = 10.0
"""The delay loop wakes at least this often (client-go's ``maxWait``), so a clock jump cannot strand items."""


class ShutDown(Exception):
    """Raised by ``get`` once the queue is shut down and empty."""


class QueueMetrics(Protocol):
    """Receives workqueue measurements; ``metrics.WorkqueueMetrics`` exports them to Prometheus."""

    def on_add(self) -> None:
        """An item newly became dirty (repeated adds that collapse are not counted)."""

    def on_depth(self, depth: int) -> None:
        """The number of dirty items changed."""

    def on_get(self, queued_seconds: float) -> None:
        """An item was handed out after waiting ``queued_seconds`` since its first add."""

    def on_done(self, work_seconds: float) -> None:
        """An item was done after ``work_seconds`` of processing."""

    def on_retry(self) -> None:
        """``add_after`` or ``add_rate_limited`` was called."""


class NoMetrics:
    """A ``QueueMetrics`` that records nothing."""

    def on_add(self) -> None:
        return None

    def on_depth(self, depth: int) -> None:
        return None

    def on_get(self, queued_seconds: float) -> None:
        return None

    def on_done(self, work_seconds: float) -> None:
        return None

    def on_retry(self) -> None:
        return None


class WorkQueue(Generic[T]):
    """A fair, stingy, delaying, rate-limited queue of hashable items (usually ``Request`` keys)."""

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        metrics: QueueMetrics | None = None,
    ) -> None:
        self._clock = clock or RealClock()
        self._limiter = rate_limiter or default_controller_rate_limiter(clock=self._clock)
        self._metrics: QueueMetrics = metrics or NoMetrics()
        # Invariant: every element of _queue is in _dirty and not in _processing.
        self._queue: deque[T] = deque()
        # Items that need processing: queued, or re-added while being processed.
        self._dirty: set[T] = set()
        # Items handed out by get() and not yet done().
        self._processing: dict[T, float] = {}
        # First add time of each dirty item, for workqueue_queue_duration_seconds.
        self._added_at: dict[T, float] = {}
        # Delayed items: one entry per item (readyAt, seq); the heap may hold stale entries, skipped on pop.
        self._waiting: dict[T, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._waiting_changed = asyncio.Event()
        self._waiting_task: asyncio.Task[None] | None = None
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drain = False
        self._drained = asyncio.Event()

    # -- basic queue -----

    def add(self, item: T) -> None:
        """Mark ``item`` for processing. No-op if already dirty; dropped after ``shutdown``."""
        if self._shutting_down:
            return
        self._cancel_waiting(item)
        if item in self._dirty:
            return
        self._dirty.add(item)
        self._added_at[item] = self._clock.now()
        self._metrics.on_add()
        self._metrics.on_depth(len(self._dirty))
        if item in self._processing:
            return  # done() puts it back in the queue
        self._push(item)

    async def get(self) -> T:
        """Wait for the next item and mark it processing. Raises ``ShutDown`` when shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # Pass a wake-up we consumed on to the next getter, so no item is left without a worker.
                if fut.done() and not fut.cancelled():
                    self._wake_one()
                raise
        item = self._queue.popleft()
        now = self._clock.now()
        self._dirty.discard(item)
        self._processing[item] = now
        self._metrics.on_get(now - self._added_at.pop(item, now))
        self._metrics.on_depth(len(self._dirty))
        return item

    def done(self, item: T) -> None:
        """Mark ``item`` processed; if it was added again meanwhile, queue it again."""
        started = self._processing.pop(item, None)
        if started is None:
            return
        self._metrics.on_done(self._clock.now() - started)
        if item in self._dirty:
            self._push(item)
        elif not self._processing:
            self._drained.set()

    def __len__(self) -> int:
        """Items ready to be handed out. Informational only: never gate logic on it."""
        return len(self._queue)

    def shutdown(self) -> None:
        """Drop new adds; ``get`` hands out what is queued, then raises ``ShutDown``. Ends a drain wait."""
        self._shutting_down = True
        self._drain = False
        self._drained.set()
        self._stop_waiting_loop()
        while self._getters:
            self._wake_one()

    async def shutdown_with_drain(self) -> None:
        """``shutdown``, then wait until every handed-out item is ``done``; a later ``shutdown`` ends it."""
        self._drain = True
        self._shutting_down = True
        self._stop_waiting_loop()
        while self._getters:
            self._wake_one()
        while self._drain and self._processing:
            self._drained.clear()
            await self._drained.wait()

    @property
    def shutting_down(self) -> bool:
        """Whether ``shutdown`` or ``shutdown_with_drain`` has been called."""
        return self._shutting_down

    def processing_ages(self) -> list[float]:
        """Seconds each handed-out item has been processing (for the unfinished-work gauges)."""
        now = self._clock.now()
        return [now - started for started in self._processing.values()]

    # -- delays -----

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` after ``delay`` seconds. If it is already waiting, the earlier ready time wins; if it
        is already ready (dirty), this is a no-op."""
        if self._shutting_down:
            return
        self._metrics.on_retry()
        if delay <= 0:
            self.add(item)
            return
        if item in self._dirty:
            return  # ready beats waiting: it is processed (again) without delay
        ready_at = self._clock.now() + delay
        current = self._waiting.get(item)
        if current is not None and current[0] <= ready_at:
            return
        seq = next(self._seq)
        self._waiting[item] = (ready_at, seq)
        heapq.heappush(self._heap, (ready_at, seq, item))
        self._waiting_changed.set()
        if self._waiting_task is None:
            self._waiting_task = asyncio.get_running_loop().create_task(
                self._waiting_loop(), name="workqueue-delays"
            )

    def num_waiting(self) -> int:
        """Items waiting for their delay to pass."""
        return len(self._waiting)

    # -- rate limiting -----

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` once the rate limiter allows it (records one more failure)."""
        self.add_after(item, self._limiter.when(item))

    def forget(self, item: T) -> None:
        """Clear the failure history of ``item`` (call on success, or when giving up)."""
        self._limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """Failures recorded for ``item`` since it was last forgotten."""
        return self._limiter.num_requeues(item)

    # -- internals -----

    def _push(self, item: T) -> None:
        self._queue.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _cancel_waiting(self, item: T) -> None:
        # The heap entry goes stale and is skipped when popped.
        self._waiting.pop(item, None)

    def _promote_due(self) -> float | None:
        """Add every waiting item whose time has come; return the next ready time, if any."""
        now = self._clock.now()
        while self._heap:
            ready_at, seq, item = self._heap[0]
            if self._waiting.get(item) != (ready_at, seq):
                heapq.heappop(self._heap)
                continue
            if ready_at > now:
                return ready_at
            heapq.heappop(self._heap)
            del self._waiting[item]
            self.add(item)
        return None

    async def _waiting_loop(self) -> None:
        while not self._shutting_down:
            self._waiting_changed.clear()
            next_ready = self._promote_due()
            wait = MAX_WAIT if next_ready is None else min(MAX_WAIT, next_ready - self._clock.now())
            sleeper = asyncio.ensure_future(self._clock.sleep(wait))
            changed = asyncio.ensure_future(self._waiting_changed.wait())
            try:
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()

    def _stop_waiting_loop(self) -> None:
        if self._waiting_task is not None:
            self._waiting_task.cancel()
            self._waiting_task = None
        self._waiting.clear()
        self._heap.clear()
