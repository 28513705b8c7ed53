"""Controller loop invariants: the queue action and metric for each reconcile outcome, no concurrent reconcile
of one key, start rules. Keys are added to the queue directly (no informer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import generate_latest

from controller.runtime.client import ApiError
from controller.runtime.clock import FakeClock
from controller.runtime.controller import CacheSyncTimeoutError, Controller
from controller.runtime.informer import Informer
from controller.runtime.metrics import Metrics
from controller.runtime.ratelimit import ItemExponentialFailureRateLimiter
from controller.runtime.reconcile import Request, Result, TerminalError
from controller.runtime.resources import CONFIGMAPS
from tests.unit.runtime.fakes import FakeApi

pytestmark = pytest.mark.timeout(5)

KEY = Request(namespace="ns", name="a")
Reconcile = Callable[[Request], Awaitable[Result | None]]


async def settle(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def sample(metrics: Metrics, metric: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


class Harness:
    def __init__(self, reconcile: Reconcile, *, workers: int = 1, timeout: float | None = None) -> None:
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.ctrl = Controller(
            name="test",
            reconcile=reconcile,
            max_concurrent_reconciles=workers,
            rate_limiter=ItemExponentialFailureRateLimiter(base_delay=1.0, max_delay=100.0),
            reconcile_timeout=timeout,
            metrics=self.metrics,
            clock=self.clock,
        )

    def total(self, result: str) -> float:
        return sample(self.metrics, "controller_runtime_reconcile_total", controller="test", result=result)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Harness], None]]:
    tasks: list[asyncio.Task[None]] = []

    def start(h: Harness) -> None:
        tasks.append(asyncio.create_task(h.ctrl.start()))

    yield start
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_success_forgets(running: Callable[[Harness], None]) -> None:
    calls: list[Request] = []

    async def reconcile(req: Request) -> None:
        calls.append(req)

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add_rate_limited(KEY)  # one recorded failure, to see it forgotten
    h.clock.step(1.0)
    await settle()
    assert calls == [KEY]
    assert h.ctrl.queue.num_requeues(KEY) == 0
    assert h.total("success") == 1


async def test_error_requeues_with_backoff(running: Callable[[Harness], None]) -> None:
    calls = 0

    async def reconcile(req: Request) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("transient")

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add(KEY)
    await settle()
    assert calls == 1 and h.ctrl.queue.num_requeues(KEY) == 1
    h.clock.step(0.9)
    await settle()
    assert calls == 1  # backoff 1 s not over
    h.clock.step(0.2)
    await settle()
    assert calls == 2  # then 2 s
    h.clock.step(2.1)
    await settle()
    assert calls == 3
    assert h.ctrl.queue.num_requeues(KEY) == 0  # forgotten on success
    assert h.total("error") == 2 and h.total("success") == 1
    assert sample(h.metrics, "controller_runtime_reconcile_errors_total", controller="test") == 2


async def test_conflict_is_an_error_requeued(running: Callable[[Harness], None]) -> None:
    async def reconcile(req: Request) -> None:
        raise ApiError(status=409, reason="Conflict")

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add(KEY)
    await settle()
    assert h.total("error") == 1
    assert h.ctrl.queue.num_waiting() == 1


async def test_terminal_error_is_not_requeued(running: Callable[[Harness], None]) -> None:
    calls = 0

    async def reconcile(req: Request) -> None:
        nonlocal calls
        calls += 1
        raise TerminalError("bad spec")

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add(KEY)
    await settle()
    h.clock.step(1000)
    await settle()
    assert calls == 1
    assert h.ctrl.queue.num_waiting() == 0 and len(h.ctrl.queue) == 0
    assert sample(h.metrics, "controller_runtime_terminal_reconcile_errors_total", controller="test") == 1
    assert h.total("error") == 1


async def test_requeue_after_forgets_and_comes_back(running: Callable[[Harness], None]) -> None:
    calls = 0

    async def reconcile(req: Request) -> Result:
        nonlocal calls
        calls += 1
        return Result(requeue_after=30)

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add_rate_limited(KEY)
    h.clock.step(1)
    await settle()
    assert calls == 1 and h.ctrl.queue.num_requeues(KEY) == 0
    h.clock.step(29.5)
    await settle()
    assert calls == 1
    h.clock.step(1)
    await settle()
    assert calls == 2
    assert h.total("requeue_after") == 2


async def test_requeue_uses_the_rate_limiter(running: Callable[[Harness], None]) -> None:
    async def reconcile(req: Request) -> Result:
        return Result(requeue=True)

    h = Harness(reconcile)
    running(h)
    h.ctrl.queue.add(KEY)
    await settle()
    assert h.total("requeue") == 1
    assert h.ctrl.queue.num_requeues(KEY) == 1


async def test_a_key_is_never_reconciled_concurrently(running: Callable[[Harness], None]) -> None:
    active: set[Request] = set()
    overlaps = 0
    done = 0

    async def reconcile(req: Request) -> None:
        nonlocal overlaps, done
        if req in active:
            overlaps += 1
        active.add(req)
        await asyncio.sleep(0.001)
        active.discard(req)
        done += 1

    h = Harness(reconcile, workers=4)
    running(h)
    for i in range(100):
        h.ctrl.queue.add(Request(namespace="ns", name=str(i % 3)))
        await asyncio.sleep(0)
    for _ in range(200):
        if len(h.ctrl.queue) == 0 and not active:
            break
        await asyncio.sleep(0.002)
    assert overlaps == 0
    assert done >= 3


async def test_reconcile_timeout_counts_and_requeues(running: Callable[[Harness], None]) -> None:
    async def reconcile(req: Request) -> None:
        await asyncio.sleep(10)

    h = Harness(reconcile, timeout=0.01)
    running(h)
    h.ctrl.queue.add(KEY)
    for _ in range(100):
        if h.total("error"):
            break
        await asyncio.sleep(0.005)
    assert sample(h.metrics, "controller_runtime_reconcile_timeouts_total", controller="test") == 1
    assert h.ctrl.queue.num_requeues(KEY) == 1


async def test_cancellation_is_not_counted() -> None:
    started = asyncio.Event()

    async def reconcile(req: Request) -> None:
        started.set()
        await asyncio.sleep(10)

    h = Harness(reconcile)
    task = asyncio.create_task(h.ctrl.start())
    h.ctrl.queue.add(KEY)
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert h.total("error") == 0 and h.total("success") == 0
    assert h.ctrl.queue.shutting_down


async def test_start_twice_is_an_error(running: Callable[[Harness], None]) -> None:
    async def reconcile(req: Request) -> None:
        return None

    h = Harness(reconcile)
    running(h)
    await settle()
    with pytest.raises(RuntimeError):
        await h.ctrl.start()


async def test_workers_wait_for_cache_sync() -> None:
    api = FakeApi()
    informer = Informer(client=api.client, resource=CONFIGMAPS)
    calls: list[Request] = []

    async def reconcile(req: Request) -> None:
        calls.append(req)

    ctrl = Controller(name="sync", reconcile=reconcile, cache_sync_timeout=0.05)
    ctrl.watch(informer)
    ctrl.queue.add(KEY)
    with pytest.raises(CacheSyncTimeoutError):
        await ctrl.start()  # the informer never ran
    assert calls == []


async def test_metrics_names_and_initial_values() -> None:
    async def reconcile(req: Request) -> None:
        return None

    h = Harness(reconcile, workers=3)
    text = generate_latest(h.metrics.registry).decode()
    for result in ("success", "error", "requeue", "requeue_after"):
        assert f'controller_runtime_reconcile_total{{controller="test",result="{result}"}} 0.0' in text
    for name in (
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_terminal_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "controller_runtime_active_workers",
        'workqueue_depth{controller="test",name="test",priority=""}',
        "workqueue_unfinished_work_seconds",
        "workqueue_longest_running_processor_seconds",
    ):
        assert name in text, name
    assert 'controller_runtime_max_concurrent_reconciles{controller="test"} 3.0' in text
    assert "_created" not in text
    h.ctrl.queue.add(KEY)
    h.ctrl.queue.add(KEY)
    h.ctrl.queue.add_after(Request(namespace="ns", name="b"), 5)
    assert sample(h.metrics, "workqueue_adds_total", name="test", controller="test") == 1
    assert sample(h.metrics, "workqueue_depth", name="test", controller="test", priority="") == 1
    assert sample(h.metrics, "workqueue_retries_total", name="test", controller="test") == 1
    h.ctrl.queue.shutdown()
