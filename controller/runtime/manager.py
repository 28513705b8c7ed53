"""The manager: shared informers, controllers, leader election, probes, metrics and graceful shutdown.

Start order (controller-runtime's ``pkg/manager/internal.go``):

1. ``/healthz``, ``/readyz`` and ``/metrics`` start serving (readiness includes "every informer synced", plus
   whatever ``add_readyz_check`` added).
2. Every informer starts (caches fill even on a follower, so a new leader starts warm), with the
   runnables that do not need leadership.
3. With leader election: wait to acquire the Lease, then keep renewing it.
4. Controllers start; each waits for its informers' caches to sync before its workers run.

``run()`` returns when cancelled, after a graceful shutdown in reverse order: controllers stop (in-flight
reconciles are cancelled, within ``graceful_shutdown_timeout``), then the Lease is released, then informers
and the probe server stop. If leadership is lost, ``run()`` raises ``LeaderElectionLost`` at once: the
process must exit (``serve`` maps it to exit code 1). ``serve()`` is ``run()`` with SIGTERM/SIGINT
triggering the shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from controller.runtime.cache import Object
from controller.runtime.client import KubeClient
from controller.runtime.clock import Clock
from controller.runtime.controller import Controller, ControllerOptions
from controller.runtime.events import EventRecorder
from controller.runtime.health import Check, HealthServer
from controller.runtime.informer import Informer
from controller.runtime.leaderelection import LeaderElectionConfig, LeaderElectionLost, LeaderElector
from controller.runtime.metrics import Metrics
from controller.runtime.reconcile import Reconciler
from controller.runtime.resources import Resource
from controller.runtime.status import StatusWriter

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

Runnable = Callable[[], Coroutine[Any, Any, None]]

GRACEFUL_SHUTDOWN_TIMEOUT = 30.0


class Manager:
    """Owns the shared parts of a controller process. Build it, add controllers, then ``await serve()``."""

    def __init__(
        self,
        *,
        api_client: Any,
        leader_election: LeaderElectionConfig | None = None,
        health_host: str = "0.0.0.0",
        health_port: int | None = 8081,
        graceful_shutdown_timeout: float = GRACEFUL_SHUTDOWN_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        self.metrics = Metrics()
        self.client = KubeClient(api_client, metrics=self.metrics)
        """JSON verbs for any ``Resource`` (writes; reads on the hot path go to the informers' stores)."""
        self.status = StatusWriter(self.client)
        """Status subresource writes, retried on conflict."""
        self.elector = (
            LeaderElector(client=self.client, config=leader_election, metrics=self.metrics, clock=clock)
            if leader_election is not None
            else None
        )
        self.health = (
            HealthServer(registry=self.metrics.registry, host=health_host, port=health_port)
            if health_port is not None
            else None
        )
        self._graceful_timeout = graceful_shutdown_timeout
        self._clock = clock
        self._informers: dict[tuple[Resource, str | None, str | None, bool], Informer] = {}
        self._controllers: list[Controller] = []
        self._runnables: list[tuple[Runnable, bool]] = []
        self._recorders: dict[str, EventRecorder] = {}
        self._readyz: dict[str, Check] = {"informers-synced": self.caches_synced}
        self._started = False

    # -- building ---

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resync_period: float | None = None,
        transform: Callable[[Object], Object] | None = None,
        metadata_only: bool = False,
    ) -> Informer:
        """The shared informer of ``resource`` (in ``namespace``, or all); created on first use.

        Callers asking for the same resource, namespace, label selector and ``metadata_only`` (see
        ``Informer.metadata_only``) share one informer; its
        ``resync_period`` and ``transform`` are those of the first call. A later call with another
        ``transform`` is an error: its caller would not see the objects it expects.
        """
        key = (resource, namespace, label_selector, metadata_only)
        informer = self._informers.get(key)
        if informer is not None and transform is not None and informer.transform is not transform:
            raise ValueError(f"{informer!r} already exists with another transform")
        if informer is None:
            self._refuse_after_start("an informer")
            informer = Informer(
                client=self.client,
                resource=resource,
                namespace=namespace,
                label_selector=label_selector,
                resync_period=resync_period,
                clock=self._clock,
                transform=transform,
                metadata_only=metadata_only,
            )
            self._informers[key] = informer
        return informer

    def new_controller(
        self, *, name: str, reconcile: Reconciler, **options: Unpack[ControllerOptions]
    ) -> Controller:
        """A controller registered with this manager (its metrics and clock; ``options`` as ``Controller``
        takes them, same defaults); wire its sources with ``controller.watch``."""
        self._refuse_after_start("a controller")
        if any(c.name == name for c in self._controllers):
            raise ValueError(f"controller {name!r} already exists")
        controller = Controller(
            name=name, reconcile=reconcile, metrics=self.metrics, clock=self._clock, **options
        )
        self._controllers.append(controller)
        return controller

    def add_runnable(self, runnable: Runnable, *, need_leader_election: bool = True) -> None:
        """Run ``runnable()`` with the manager (only while leading, if ``need_leader_election``)."""
        self._refuse_after_start("a runnable")
        self._runnables.append((runnable, need_leader_election))

    def event_recorder(self, component: str) -> EventRecorder:
        """The Event recorder of ``component`` (the ``From`` column of ``kubectl describe``)."""
        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = self._recorders[component] = EventRecorder(self.client, component=component)
        return recorder

    def add_readyz_check(self, name: str, check: Check) -> None:
        """Add a readiness check, e.g. "extension server started"."""
        self._readyz[name] = check
        if self.health is not None:
            self.health.add_readyz_check(name, check)

    def add_healthz_check(self, name: str, check: Check) -> None:
        """Add a liveness check."""
        if self.health is not None:
            self.health.add_healthz_check(name, check)

    def caches_synced(self) -> bool:
        """Whether every informer has synced."""
        return all(i.has_synced for i in self._informers.values())

    @property
    def is_leader(self) -> bool:
        """Leading (always True without leader election)."""
        return self.elector is None or self.elector.is_leader

    # -- running ---

    async def run(self) -> None:
        """Start everything; run until cancelled (graceful) or leadership is lost (``LeaderElectionLost``)."""
        if self._started:
            raise RuntimeError("manager already started")
        self._started = True
        background: list[asyncio.Task[None]] = []  # informers and runnables that run on followers too
        leading: list[asyncio.Task[None]] = []  # controllers and leader-only runnables
        hold: asyncio.Task[None] | None = None
        try:
            if self.health is not None:
                for name, check in self._readyz.items():
                    self.health.add_readyz_check(name, check)
                await self.health.start()
            for informer in self._informers.values():
                background.append(asyncio.create_task(informer.run(), name=f"informer-{informer.resource}"))
            background += [asyncio.create_task(r()) for r, needs in self._runnables if not needs]
            if self.elector is not None:
                await self.elector.acquire()
                hold = asyncio.create_task(self.elector.hold(), name="leader-election")
            leading += [
                asyncio.create_task(c.start(), name=f"controller-{c.name}") for c in self._controllers
            ]
            leading += [asyncio.create_task(r()) for r, needs in self._runnables if needs]
            watched = [*background, *leading, *([hold] if hold else [])]
            if watched:
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            await asyncio.Event().wait()  # everything returned normally: idle until cancelled
        finally:
            await self._stop(leading, hold, background)

    async def _stop(
        self,
        leading: list[asyncio.Task[None]],
        hold: asyncio.Task[None] | None,
        background: list[asyncio.Task[None]],
    ) -> None:
        # Reverse order: stop reconciling before releasing the Lease, so two leaders never reconcile at once.
        await self._cancel(leading, "controllers")
        for recorder in self._recorders.values():
            await recorder.close()
        if hold is not None:
            await self._cancel([hold], "leader election")
        await self._cancel(background, "informers")
        if self.health is not None:
            await self.health.stop()

    async def _cancel(self, tasks: list[asyncio.Task[None]], what: str) -> None:
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._graceful_timeout)
        if pending:
            log.error("%d %s did not stop within %.0fs", len(pending), what, self._graceful_timeout)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, LeaderElectionLost):
                    log.error("%s task %s failed during shutdown: %r", what, task.get_name(), exc)

    async def serve(self) -> int:
        """``run()`` until SIGTERM or SIGINT; the process exit code (1 if leadership was lost)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signalled = False

        def on_signal() -> None:
            nonlocal signalled
            if not signalled:
                signalled = True
                log.info("signal received: shutting down")
                task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await self.run()
        except asyncio.CancelledError:
            if not signalled:
                raise
            task.uncancel()
        except LeaderElectionLost as e:
            log.error("exiting: %s", e)
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return 0

    def _refuse_after_start(self, what: str) -> None:
        if self._started:
            raise RuntimeError(f"cannot add {what} after the manager started")
