"""Manager without a cluster: probes and metrics over HTTP, readiness checks, graceful SIGTERM, exit code 1
when leadership is lost, the stop order (controllers before the Lease is released)."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest

from controller.runtime.informer import strip_managed_fields
from controller.runtime.leaderelection import LeaderElectionLost
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resources import CONFIGMAPS, SECRETS

pytestmark = pytest.mark.timeout(10)


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def started(mgr: Manager) -> asyncio.Task[None]:
    task = asyncio.create_task(mgr.run())
    for _ in range(200):
        if mgr.health is not None and mgr.health.port:
            break
        await asyncio.sleep(0.01)
    return task


async def test_probes_and_metrics_are_served() -> None:
    mgr = Manager(api_client=None, health_host="127.0.0.1", health_port=0)

    async def reconcile(req: Request) -> None:
        return None

    mgr.new_controller(name="things", reconcile=reconcile)
    extension_started = False
    mgr.add_readyz_check("extension-server", lambda: extension_started)
    task = await started(mgr)
    assert mgr.health is not None
    port = mgr.health.port
    assert await get(port, "/healthz") == (200, "ok")
    status, body = await get(port, "/readyz?verbose")
    assert status == 500
    assert "[+]informers-synced ok" in body and "[-]extension-server failed" in body
    extension_started = True
    assert await get(port, "/readyz") == (200, "ok")
    status, metrics = await get(port, "/metrics")
    assert status == 200
    assert 'controller_runtime_reconcile_total{controller="things",result="success"} 0.0' in metrics
    assert 'workqueue_depth{controller="things",name="things",priority=""}' in metrics
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(port, "/healthz")


async def test_sigterm_shuts_down_gracefully_with_exit_code_0() -> None:
    mgr = Manager(api_client=None, health_port=None)
    stopped = asyncio.Event()

    async def runnable() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    mgr.add_runnable(runnable)
    serve = asyncio.create_task(mgr.serve())
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serve, 5) == 0
    assert stopped.is_set()


class FakeElector:
    """Stands in for LeaderElector: records the order of events."""

    def __init__(self, log: list[str], *, lose_after: float | None = None) -> None:
        self.log = log
        self.lose_after = lose_after
        self.is_leader = False

    async def acquire(self) -> None:
        self.is_leader = True
        self.log.append("acquired")

    async def hold(self) -> None:
        try:
            if self.lose_after is not None:
                await asyncio.sleep(self.lose_after)
                raise LeaderElectionLost("lost")
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append("released")
            raise


async def test_controllers_stop_before_the_lease_is_released() -> None:
    log: list[str] = []
    mgr = Manager(api_client=None, health_port=None)
    mgr.elector = FakeElector(log)  # type: ignore[assignment]

    async def leader_work() -> None:
        log.append("leading")
        try:
            await asyncio.Event().wait()
        finally:
            log.append("controllers stopped")

    mgr.add_runnable(leader_work)
    task = asyncio.create_task(mgr.run())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert log == ["acquired", "leading", "controllers stopped", "released"]


async def test_lost_leadership_exits_with_code_1() -> None:
    log: list[str] = []
    mgr = Manager(api_client=None, health_port=None)
    mgr.elector = FakeElector(log, lose_after=0.05)  # type: ignore[assignment]
    assert await asyncio.wait_for(mgr.serve(), 5) == 1


async def test_nothing_can_be_added_after_start() -> None:
    mgr = Manager(api_client=None, health_port=None)
    task = asyncio.create_task(mgr.run())
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError):
        mgr.add_runnable(asyncio.sleep)  # type: ignore[arg-type]
    assert not task.done()  # an empty manager idles until cancelled
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failing_runnable_stops_the_manager() -> None:
    mgr = Manager(api_client=None, health_port=None)

    async def broken() -> None:
        raise RuntimeError("cache sync timeout, say")

    mgr.add_runnable(broken)
    with pytest.raises(RuntimeError, match="cache sync timeout"):
        await asyncio.wait_for(mgr.run(), 5)


def test_informers_are_shared_per_resource_namespace_and_selector() -> None:
    mgr = Manager(api_client=None, health_port=None)
    a = mgr.informer(CONFIGMAPS, namespace="ns")
    assert mgr.informer(CONFIGMAPS, namespace="ns") is a
    assert mgr.informer(CONFIGMAPS) is not a
    assert mgr.informer(CONFIGMAPS, namespace="ns", label_selector="app=x") is not a
    stripped = mgr.informer(SECRETS, transform=strip_managed_fields)
    assert mgr.informer(SECRETS) is stripped
    with pytest.raises(ValueError):
        mgr.informer(SECRETS, transform=lambda o: o)
