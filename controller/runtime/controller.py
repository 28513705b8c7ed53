"""A controller: informer notifications become keys in a workqueue; N workers reconcile them.

Follows controller-runtime's ``pkg/internal/controller/controller.go``:

- ``watch(informer, handler, *predicates)`` wires a source; ``start()`` waits for every source's cache to sync
  (``cache_sync_timeout``, default 2 min; missing it is an error), then runs ``max_concurrent_reconciles``
  workers until cancelled, then shuts the queue down and waits for the workers.
- A worker takes a key (never one another worker holds), reconciles it, and always marks it done:

  ======================== =================================== ==========================
  reconcile                queue action                        reconcile_total{result}
  ======================== =================================== ==========================
  raises (not terminal)    ``add_rate_limited``                ``error``
  raises ``TerminalError`` nothing (not requeued, not forgot)  ``error``
  ``requeue_after > 0``    ``forget``, ``add_after``           ``requeue_after``
  ``requeue``              ``add_rate_limited``                ``requeue``
  ``None`` / ``Result()``  ``forget``                          ``success``
  ======================== =================================== ==========================

``asyncio.CancelledError`` is never counted: it means the controller is stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TypedDict

from controller.runtime.cache import Object
from controller.runtime.client import is_conflict
from controller.runtime.clock import Clock
from controller.runtime.handler import EnqueueRequestForObject, EventHandler, Predicate
from controller.runtime.informer import DeletedFinalStateUnknown, Informer, unwrap_tombstone
from controller.runtime.metrics import RESULTS, Metrics, WorkqueueMetrics
from controller.runtime.ratelimit import RateLimiter
from controller.runtime.reconcile import Reconciler, Request, Result, TerminalError
from controller.runtime.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)

CACHE_SYNC_TIMEOUT = 120.0


class ControllerOptions(TypedDict, total=False):
    """How a controller runs: the keyword arguments ``Controller`` takes (its defaults apply to the ones left
    out) that ``Manager.new_controller`` passes through."""

    max_concurrent_reconciles: int
    rate_limiter: RateLimiter | None
    reconcile_timeout: float | None
    cache_sync_timeout: float
    need_leader_election: bool


class CacheSyncTimeoutError(Exception):
    """A controller's sources did not sync within ``cache_sync_timeout``."""


class _Source:
    """Adapts informer notifications to an ``EventHandler`` filtered by predicates, feeding one queue."""

    def __init__(
        self, *, queue: WorkQueue[Request], handler: EventHandler, predicates: tuple[Predicate, ...]
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._predicates = predicates

    def on_add(self, obj: Object, *, is_in_initial_list: bool) -> None:
        if all(p.create(obj) for p in self._predicates):
            self._handler.create(obj, self._queue)

    def on_update(self, old: Object, new: Object) -> None:
        if all(p.update(old, new) for p in self._predicates):
            self._handler.update(old, new, self._queue)

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        last = unwrap_tombstone(obj)
        if all(p.delete(last) for p in self._predicates):
            self._handler.delete(last, self._queue)


class Controller:
    """Reconciles the keys its sources enqueue, on ``max_concurrent_reconciles`` workers."""

    def __init__(
        self,
        *,
        name: str,
        reconcile: Reconciler,
        max_concurrent_reconciles: int = 1,
        rate_limiter: RateLimiter | None = None,
        reconcile_timeout: float | None = None,
        cache_sync_timeout: float = CACHE_SYNC_TIMEOUT,
        need_leader_election: bool = True,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_concurrent_reconciles < 1:
            raise ValueError("max_concurrent_reconciles must be >= 1")
        self.name = name
        self.need_leader_election = need_leader_election
        self._reconcile = reconcile
        self._workers = max_concurrent_reconciles
        self._timeout = reconcile_timeout
        self._cache_sync_timeout = cache_sync_timeout
        self._metrics = metrics or Metrics()
        self._metrics.init_controller(name, max_concurrent_reconciles=max_concurrent_reconciles)
        self.queue: WorkQueue[Request] = WorkQueue(
            rate_limiter=rate_limiter, clock=clock, metrics=self._metrics.workqueue(name)
        )
        WorkqueueMetrics.track_unfinished(self._metrics, name, self.queue.processing_ages)
        self._informers: list[Informer] = []
        self._started = False
        self._active = self._metrics.active_workers.labels(name)
        self._time = self._metrics.reconcile_time.labels(name)
        self._total = {r: self._metrics.reconcile_total.labels(name, r) for r in RESULTS}

    def __repr__(self) -> str:
        return f"Controller({self.name!r})"

    def watch(self, informer: Informer, handler: EventHandler | None = None, *predicates: Predicate) -> None:
        """Enqueue keys for ``informer``'s notifications via ``handler`` (default: the object's key)."""
        source = _Source(
            queue=self.queue, handler=handler or EnqueueRequestForObject(), predicates=predicates
        )
        informer.add_handler(source)
        if informer not in self._informers:
            self._informers.append(informer)

    async def start(self) -> None:
        """Wait for the caches, then reconcile until cancelled. Starting twice is an error."""
        if self._started:
            raise RuntimeError(f"{self!r} already started")
        self._started = True
        try:
            await self._wait_for_sync()
            log.info("[%s] caches synced; starting %d workers", self.name, self._workers)
            async with asyncio.TaskGroup() as tg:
                for i in range(self._workers):
                    tg.create_task(self._worker(), name=f"{self.name}-worker-{i}")
        finally:
            # Stop handing out keys; workers are already cancelled (or finished) by the task group.
            self.queue.shutdown()

    async def _wait_for_sync(self) -> None:
        pending = [i for i in self._informers if not i.has_synced]
        if not pending:
            return
        results = await asyncio.gather(*(i.wait_for_sync(within=self._cache_sync_timeout) for i in pending))
        not_synced = [repr(i) for i, ok in zip(pending, results, strict=True) if not ok]
        if not_synced:
            raise CacheSyncTimeoutError(
                f"[{self.name}] caches not synced after {self._cache_sync_timeout}s: {not_synced}"
            )

    async def _worker(self) -> None:
        while True:
            try:
                req = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._reconcile_handler(req)
            finally:
                self.queue.done(req)

    async def _reconcile_handler(self, req: Request) -> None:
        reconcile_id = uuid.uuid4().hex[:12]
        self._active.inc()
        started = time.perf_counter()
        try:
            result = await self._run_reconcile(req)
        except asyncio.CancelledError:
            raise
        except TerminalError as e:
            self._count_error(terminal=True)
            log.error(
                "[%s] [%s] terminal error (not requeued): %s reconcileID=%s", self.name, req, e, reconcile_id
            )
        except Exception as e:
            self._count_error(terminal=False)
            self.queue.add_rate_limited(req)
            if is_conflict(e):
                # Someone else wrote first; the next reconcile reads the newer object. Routine, not alarming.
                log.info("[%s] [%s] conflict, requeued: %s reconcileID=%s", self.name, req, e, reconcile_id)
            else:
                log.exception(
                    "[%s] [%s] reconcile failed, requeued reconcileID=%s", self.name, req, reconcile_id
                )
        else:
            self._after_success(req, result)
        finally:
            self._time.observe(time.perf_counter() - started)
            self._active.dec()

    async def _run_reconcile(self, req: Request) -> Result | None:
        if self._timeout is None:
            return await self._reconcile(req)
        try:
            async with asyncio.timeout(self._timeout) as cm:
                return await self._reconcile(req)
        except TimeoutError:
            if cm.expired():
                self._metrics.reconcile_timeouts.labels(self.name).inc()
            raise

    def _after_success(self, req: Request, result: Result | None) -> None:
        if result is not None and result.requeue_after > 0:
            self.queue.forget(req)
            self.queue.add_after(req, result.requeue_after)
            self._total["requeue_after"].inc()
        elif result is not None and result.requeue:
            self.queue.add_rate_limited(req)
            self._total["requeue"].inc()
        else:
            self.queue.forget(req)
            self._total["success"].inc()

    def _count_error(self, *, terminal: bool) -> None:
        self._total["error"].inc()
        self._metrics.reconcile_errors.labels(self.name).inc()
        if terminal:
            self._metrics.terminal_errors.labels(self.name).inc()
