"""Leader election over the in-memory fake API with fake clocks: takeover only after the record stood still
for the lease duration on the candidate's own clock; loss after the renew deadline; release on cancel."""

from __future__ import annotations

import asyncio

import pytest

from controller.runtime.client import ApiError
from controller.runtime.clock import FakeClock
from controller.runtime.leaderelection import LeaderElectionConfig, LeaderElectionLost, LeaderElector
from controller.runtime.metrics import Metrics
from controller.runtime.resources import LEASES
from tests.unit.runtime.fakes import FakeApi

pytestmark = pytest.mark.timeout(20)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, step: float = 0.25) -> None:
    moved = 0.0
    while moved < seconds:
        clock.step(step)
        moved += step
        await settle()


def elector(api: FakeApi, identity: str, clock: FakeClock, metrics: Metrics | None = None) -> LeaderElector:
    config = LeaderElectionConfig(name="lock", namespace="ns", identity=identity)
    return LeaderElector(client=api.client, config=config, clock=clock, metrics=metrics)


async def test_acquires_a_free_lease() -> None:
    api, metrics = FakeApi(), Metrics()
    a = elector(api, "a", FakeClock(), metrics)
    await a.acquire()
    assert a.is_leader
    spec = (await api.get(LEASES, name="lock", namespace="ns"))["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]  # MicroTime, UTC
    assert metrics.registry.get_sample_value("leader_election_master_status", {"name": "lock"}) == 1


async def test_follower_takes_over_only_after_lease_duration_on_its_own_clock() -> None:
    api = FakeApi()
    await elector(api, "a", FakeClock()).acquire()  # then "a" dies: no renewals
    clock_b = FakeClock(start=5_000_000)  # another machine's clock: never compared with a's
    b = elector(api, "b", clock_b)
    task = asyncio.create_task(b.acquire())
    await settle()  # b's first attempt: it observes a's record now
    await advance(clock_b, 14.75)
    assert not task.done() and not b.is_leader
    await advance(clock_b, 0.5)  # tried right when the lease expires, not at the next jittered retry
    assert task.done() and b.is_leader
    spec = (await api.get(LEASES, name="lock", namespace="ns"))["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


async def test_renewing_leader_keeps_the_follower_waiting() -> None:
    api = FakeApi()
    clock = FakeClock()
    a = elector(api, "a", clock)
    await a.acquire()
    hold = asyncio.create_task(a.hold())
    b = elector(api, "b", clock)
    follower = asyncio.create_task(b.acquire())
    await advance(clock, 40)
    assert a.is_leader and not b.is_leader and not follower.done()
    hold.cancel()  # releases
    await asyncio.gather(hold, return_exceptions=True)
    await advance(clock, 6)
    assert b.is_leader
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)


async def test_only_one_of_two_candidates_wins_a_race() -> None:
    api = FakeApi()
    clock = FakeClock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    tasks = [asyncio.create_task(a.acquire()), asyncio.create_task(b.acquire())]
    await advance(clock, 10)
    assert [a.is_leader, b.is_leader].count(True) == 1
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_leadership_lost_after_renew_deadline() -> None:
    api, metrics = FakeApi(), Metrics()
    clock = FakeClock()
    a = elector(api, "a", clock, metrics)
    await a.acquire()
    api.fail("replace", ApiError(status=500, reason="InternalError"), times=1000)
    api.fail("get", OSError("connection refused"), times=1000)
    hold = asyncio.create_task(a.hold())
    await advance(clock, 11)  # first renewal at 2 s, deadline 10 s later
    assert not hold.done()
    await advance(clock, 2)
    with pytest.raises(LeaderElectionLost):
        await hold
    assert not a.is_leader
    assert metrics.registry.get_sample_value("leader_election_master_status", {"name": "lock"}) == 0


async def test_release_on_cancel_empties_the_holder() -> None:
    api = FakeApi()
    clock = FakeClock()
    a = elector(api, "a", clock)
    await a.acquire()
    hold = asyncio.create_task(a.hold())
    await advance(clock, 5)
    hold.cancel()
    await asyncio.gather(hold, return_exceptions=True)
    spec = (await api.get(LEASES, name="lock", namespace="ns"))["spec"]
    assert "holderIdentity" not in spec or not spec["holderIdentity"]
    assert spec["leaseDurationSeconds"] == 1
    assert not a.is_leader


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        LeaderElectionConfig(name="l", namespace="n", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElectionConfig(name="l", namespace="n", renew_deadline=2.0, retry_period=2.0)
    assert "_" in LeaderElectionConfig(name="l", namespace="n").identity  # hostname_uuid
