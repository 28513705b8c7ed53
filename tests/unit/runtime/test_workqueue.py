"""Workqueue invariants, one test per invariant, named after client-go's tests (``queue_test.go``,
``delaying_queue_test.go``, ``rate_limiting_queue_test.go``)."""

from __future__ import annotations

import asyncio

import pytest

from controller.runtime.clock import FakeClock
from controller.runtime.ratelimit import ItemExponentialFailureRateLimiter
from controller.runtime.workqueue import ShutDown, WorkQueue

pytestmark = pytest.mark.timeout(5)


async def settle() -> None:
    """Let every ready task run (the delay loop, woken getters)."""
    for _ in range(20):
        await asyncio.sleep(0)


def new_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    clock = clock or FakeClock()
    limiter = ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1)
    return WorkQueue(clock=clock, rate_limiter=limiter)


async def test_basic() -> None:
    """Many producers and consumers: every added item is processed exactly once."""
    q = new_queue()
    seen: list[str] = []

    async def consumer() -> None:
        while True:
            try:
                item = await q.get()
            except ShutDown:
                return
            seen.append(item)
            await asyncio.sleep(0)
            q.done(item)

    async def producer(p: int) -> None:
        for i in range(50):
            q.add(f"{p}-{i}")
            await asyncio.sleep(0)

    consumers = [asyncio.create_task(consumer()) for _ in range(10)]
    await asyncio.gather(*(producer(p) for p in range(5)))
    await settle()
    q.shutdown()
    await asyncio.gather(*consumers)
    assert sorted(seen) == sorted(f"{p}-{i}" for p in range(5) for i in range(50))


async def test_fifo_order() -> None:
    q = new_queue()
    for item in ["a", "b", "c"]:
        q.add(item)
    assert [await q.get(), await q.get(), await q.get()] == ["a", "b", "c"]


async def test_add_while_processing() -> None:
    """An item added while processing is handed out again after done, not before."""
    q = new_queue()
    q.add("a")
    item = await q.get()
    q.add("a")
    assert len(q) == 0  # not handed out while processing
    q.done(item)
    assert len(q) == 1
    assert await q.get() == "a"


async def test_never_processed_concurrently() -> None:
    """Stingy: two workers never hold the same key, however often it is re-added."""
    q = new_queue()
    holding: set[str] = set()
    overlaps = 0

    async def worker() -> None:
        nonlocal overlaps
        while True:
            try:
                item = await q.get()
            except ShutDown:
                return
            if item in holding:
                overlaps += 1
            holding.add(item)
            await asyncio.sleep(0)
            holding.discard(item)
            q.done(item)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for _ in range(200):
        q.add("same")
        await asyncio.sleep(0)
    await settle()
    q.shutdown()
    await asyncio.gather(*workers)
    assert overlaps == 0


async def test_len() -> None:
    q = new_queue()
    q.add("foo")
    assert len(q) == 1
    q.add("bar")
    assert len(q) == 2
    q.add("foo")  # already queued
    assert len(q) == 2


async def test_reinsert() -> None:
    q = new_queue()
    q.add("foo")
    item = await q.get()
    q.add(item)
    q.done(item)
    assert await q.get() == "foo"
    q.done("foo")
    assert len(q) == 0


async def test_collapse() -> None:
    """Repeated adds before processing collapse into one."""
    q = new_queue()
    q.add("bar")
    q.add("bar")
    assert len(q) == 1
    await q.get()
    assert len(q) == 0


async def test_collapse_while_processing() -> None:
    """Repeated adds while processing collapse into one more processing."""
    q = new_queue()
    q.add("bar")
    item = await q.get()
    q.add("bar")
    q.add("bar")
    q.done(item)
    assert len(q) == 1
    await q.get()
    q.done("bar")
    assert len(q) == 0


async def test_done_of_unknown_item_is_ignored() -> None:
    q = new_queue()
    q.done("never-got")
    assert len(q) == 0


async def test_get_blocks_until_add() -> None:
    q = new_queue()
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("x")
    assert await getter == "x"


async def test_cancelled_getter_passes_wakeup_on() -> None:
    """A getter cancelled right after being woken must not swallow the item."""
    q = new_queue()
    g1 = asyncio.create_task(q.get())
    g2 = asyncio.create_task(q.get())
    await settle()
    q.add("x")  # wakes g1
    g1.cancel()
    assert await g2 == "x"


async def test_no_queue_drainage_using_shutdown() -> None:
    """shutdown does not wait for processing items; queued items are still handed out, then ShutDown."""
    q = new_queue()
    q.add("a")
    q.add("b")
    item = await q.get()
    q.shutdown()  # returns at once though "a" is processing
    assert await q.get() == "b"
    with pytest.raises(ShutDown):
        await q.get()
    q.done(item)


async def test_add_after_shutdown_is_dropped() -> None:
    q = new_queue()
    q.shutdown()
    q.add("a")
    q.add_after("b", 1.0)
    assert len(q) == 0
    assert q.num_waiting() == 0


async def test_shutdown_wakes_blocked_getters() -> None:
    q = new_queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    for g in getters:
        with pytest.raises(ShutDown):
            await g


async def test_queue_drainage_using_shutdown_with_drain() -> None:
    """shutdown_with_drain waits until every handed-out item is done."""
    q = new_queue()
    q.add("a")
    q.add("b")
    a = await q.get()
    b = await q.get()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.done(a)
    await settle()
    assert not drain.done()
    q.done(b)
    await asyncio.wait_for(drain, 1)


async def test_force_queue_shutdown_using_shutdown() -> None:
    """A shutdown ends a drain wait that would otherwise hang (worker never calls done)."""
    q = new_queue()
    q.add("a")
    await q.get()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.shutdown()
    await asyncio.wait_for(drain, 1)


async def test_shutdown_with_drain_requeued_item_is_still_processed() -> None:
    """An item re-added while processing before the drain is handed out again, and the drain waits for it."""
    q = new_queue()
    q.add("a")
    a = await q.get()
    q.add("a")
    drain = asyncio.create_task(q.shutdown_with_drain())
    q.done(a)
    again = await q.get()
    assert again == "a"
    await settle()
    assert not drain.done()
    q.done(again)
    await asyncio.wait_for(drain, 1)


# -- delays ---


async def test_simple_add_after() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 0.05)
    await settle()
    assert len(q) == 0
    clock.step(0.06)
    await settle()
    assert len(q) == 1
    assert await q.get() == "foo"


async def test_add_after_zero_adds_now() -> None:
    q = new_queue()
    q.add_after("foo", 0)
    assert len(q) == 1


async def test_deduping() -> None:
    """Of two add_after for one item, the earlier ready time wins, whichever came first."""
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 0.05)
    q.add_after("foo", 0.07)  # later: ignored
    await settle()
    clock.step(0.06)
    await settle()
    assert len(q) == 1
    await q.get()
    q.done("foo")
    clock.step(0.02)  # past the ignored 0.07
    await settle()
    assert len(q) == 0

    q.add_after("bar", 0.05)
    q.add_after("bar", 0.03)  # earlier: wins
    clock.step(0.04)
    await settle()
    assert len(q) == 1
    await q.get()
    q.done("bar")
    clock.step(0.02)
    await settle()
    assert len(q) == 0  # one entry per item: the 0.05 one is gone


async def test_add_two_fire_early() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 1.0)
    q.add_after("bar", 0.05)
    await settle()
    clock.step(0.06)
    await settle()
    assert len(q) == 1
    assert await q.get() == "bar"
    q.add_after("foo", 0.02)  # earlier than the pending 1.0
    clock.step(0.03)
    await settle()
    assert len(q) == 1
    assert await q.get() == "foo"


async def test_copy_shifting() -> None:
    """Items become ready in readyAt order, not insertion order."""
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 3)
    q.add_after("bar", 1)
    q.add_after("baz", 2)
    await settle()
    clock.step(5)
    await settle()
    assert [await q.get(), await q.get(), await q.get()] == ["bar", "baz", "foo"]


async def test_add_cancels_pending_delay() -> None:
    """Ready beats waiting: a plain add processes now, and the pending delayed entry is dropped."""
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 1)
    q.add("foo")
    assert q.num_waiting() == 0
    assert await q.get() == "foo"
    q.done("foo")
    clock.step(2)
    await settle()
    assert len(q) == 0


async def test_add_after_while_ready_is_noop() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add("foo")
    q.add_after("foo", 1)
    assert q.num_waiting() == 0
    assert len(q) == 1


async def test_add_after_while_processing_fires_later() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add("foo")
    item = await q.get()
    q.add_after("foo", 1)
    clock.step(1.5)
    await settle()
    assert len(q) == 0  # still processing: re-queued on done
    q.done(item)
    assert await q.get() == "foo"


# -- rate limiting ---


async def test_rate_limiting_queue() -> None:
    """add_rate_limited delays by the limiter; forget resets it; num_requeues counts."""
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(
        clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1)
    )
    q.add_rate_limited("one")
    q.add_rate_limited("one")  # second failure: 2 ms, but the 1 ms entry wins
    q.add_rate_limited("two")
    assert q.num_requeues("one") == 2
    assert q.num_waiting() == 2
    q.forget("one")
    assert q.num_requeues("one") == 0
    clock.step(0.0015)
    await settle()
    assert len(q) == 2
