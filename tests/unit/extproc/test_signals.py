"""Passive signals (leases) and the fusion of scraped and passive data."""

from __future__ import annotations

import math

import pytest

from extproc import scorers as sc
from extproc.promtext import LoraInfo
from extproc.signals import PENALTY_TAU_S, SignalStore


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_lease_ends_once_and_feeds_averages_only_on_success() -> None:
    clock = Clock()
    store = SignalStore(clock=clock)
    lease = store.begin("a:1")
    assert store.get("a:1").inflight == 1
    clock.t += 0.1
    lease.first_byte()
    clock.t += 0.4
    lease.end(status=200)
    lease.end(status=200)
    lease.end(status=0)
    s = store.get("a:1")
    assert s.inflight == 0
    assert s.ttft == pytest.approx(0.1)
    assert s.latency == pytest.approx(0.5)
    fast_fail = store.begin("a:1")
    clock.t += 0.001
    fast_fail.end(status=503)
    assert s.latency == pytest.approx(0.5)  # a fast failure never makes it look fast
    assert s.penalty_now(clock.t) == pytest.approx(1.0)
    gone = store.begin("a:1")
    gone.end(status=0)  # the client left or the stream reset: only the slot is released
    assert s.inflight == 0 and s.penalty_now(clock.t) == pytest.approx(1.0)


def test_the_failure_penalty_decays_so_traffic_returns() -> None:
    clock = Clock()
    store = SignalStore(clock=clock)
    s = store.get("a:1")
    for _ in range(5):
        store.begin("a:1").end(status=502)
    assert not sc.healthy(s, penalty=s.penalty_now(clock.t))
    clock.t += PENALTY_TAU_S * math.log(5 / 2.9)
    assert sc.healthy(s, penalty=s.penalty_now(clock.t))
    store.begin("a:1").end(status=429)  # a server shedding load counts as a failure too
    store.begin("a:1").end(status=404)  # a client error does not
    assert s.penalty_now(clock.t) == pytest.approx(2.9 + 1.0, rel=0.01)


def test_sync_keeps_exactly_the_configured_endpoints() -> None:
    store = SignalStore()
    lease = store.begin("old:1")
    store.sync(["a:1", "b:1"])
    assert sorted(store.addresses()) == ["a:1", "b:1"]
    lease.end(status=200)  # ending a lease of a removed endpoint is harmless
    assert store.total_inflight() == 0


def _scraped(clock: Clock, *, waiting: float, running: float, kv: float | None = 0.5) -> SignalStore:
    store = SignalStore(clock=clock)
    store.get("a:1").record_scrape(now=clock.t, waiting=waiting, running=running, kv_cache=kv, lora=None)
    return store


def test_fusion_adds_our_requests_since_the_scrape() -> None:
    clock = Clock()
    store = _scraped(clock, waiting=2, running=4)
    s = store.get("a:1")
    assert sc.fuse(s, now=clock.t, stale_after=0.5) == (6.0, 2.0, 0.5)
    leases = [store.begin("a:1") for _ in range(3)]
    assert sc.fuse(s, now=clock.t, stale_after=0.5) == (9.0, 5.0, 0.5)  # batch full: they queue
    for lease in leases[:2]:
        lease.end(status=200)
    assert sc.fuse(s, now=clock.t, stale_after=0.5) == (7.0, 3.0, 0.5)


def test_fusion_spills_over_the_learnt_batch_size() -> None:
    clock = Clock()
    store = _scraped(clock, waiting=0, running=8)  # the batch size is learnt: 8
    s = store.get("a:1")
    s.record_scrape(now=clock.t, waiting=0, running=2, kv_cache=0.1, lora=None)
    for _ in range(7):
        store.begin("a:1")
    load, queue, _ = sc.fuse(s, now=clock.t, stale_after=0.5)
    assert (load, queue) == (9.0, 1.0)


def test_fusion_weighs_running_requests_against_queued_ones() -> None:
    clock = Clock()
    store = _scraped(clock, waiting=2, running=8)
    s = store.get("a:1")
    assert sc.fuse(s, now=clock.t, stale_after=0.5, running_weight=0.5) == (6.0, 2.0, 0.5)  # 2 + 8 / 2
    assert sc.fuse(s, now=clock.t, stale_after=0.5, running_weight=0.0)[0] == 2.0  # the queue alone
    for _ in range(10):
        store.begin("b:1")
    stale = store.get("b:1")  # never scraped: our 10 in flight, over a batch learnt as 8
    stale.cap_running = 8
    assert sc.fuse(stale, now=clock.t, stale_after=0.5, running_weight=0.5) == (6.0, 2.0, None)


def test_fusion_with_stale_or_missing_scrapes_uses_our_in_flight_count() -> None:
    clock = Clock()
    store = _scraped(clock, waiting=50, running=8)
    s = store.get("a:1")
    store.begin("a:1")
    clock.t += 0.6
    assert sc.fuse(s, now=clock.t, stale_after=0.5) == (1.0, 0.0, None)  # stale: the 50 are not trusted
    never = store.get("b:1")
    for _ in range(10):
        store.begin("b:1")
    assert sc.fuse(never, now=clock.t, stale_after=0.5) == (10.0, 0.0, None)


def test_fusion_when_the_scrape_contradicts_our_count() -> None:
    clock = Clock()
    store = SignalStore(clock=clock)
    for _ in range(5):
        store.begin("a:1")
    s = store.get("a:1")
    s.record_scrape(now=clock.t, waiting=0, running=1, kv_cache=None, lora=None)  # says 1, we have 5 open
    assert sc.fuse(s, now=clock.t, stale_after=0.5)[0] == 5.0
    s.record_scrape(now=clock.t, waiting=3, running=1, kv_cache=None, lora=None)
    for lease in [store.begin("a:1") for _ in range(2)]:
        lease.end(status=200)
    assert sc.fuse(s, now=clock.t, stale_after=0.5)[0] == 5.0  # 4 scraped + 0 net change, never below 5


def test_saturation_and_scorers() -> None:
    assert sc.saturation(queue=5, kv_cache=0.2, queue_limit=5, kv_limit=0.8) == 1.0
    assert sc.saturation(queue=0, kv_cache=0.96, queue_limit=5, kv_limit=0.8) == pytest.approx(1.2)
    assert sc.saturation(queue=1, kv_cache=None, queue_limit=5, kv_limit=0.8) == pytest.approx(0.2)
    assert sc.load_score(3, least=3, spread=4) == 1.0
    assert sc.load_score(5, least=3, spread=4) == 0.5
    assert sc.load_score(30, least=3, spread=4) == 0.0
    assert sc.kv_score(0.25) == 0.75 and sc.kv_score(None) == 0.5 and sc.kv_score(1.5) == 0.0
    assert sc.prefix_score(3, total_blocks=4) == 0.75 and sc.prefix_score(0, total_blocks=0) == 0.0
    info = LoraInfo(running=frozenset({"a"}), waiting=frozenset({"w"}), max_lora=2)
    full = LoraInfo(running=frozenset({"a", "b"}), waiting=frozenset({"w"}), max_lora=2)
    assert sc.lora_score(info, target="a", served_ago=None) == 1.0
    assert sc.lora_score(info, target="z", served_ago=None) == 0.0  # a + w fill both slots
    assert sc.lora_score(info, target="z", served_ago=1.0) == 0.9  # we sent it there a second ago
    assert sc.lora_score(info, target="z", served_ago=sc.LORA_RECENT_S + 1) == 0.0
    empty = LoraInfo(running=frozenset(), waiting=frozenset(), max_lora=1)
    assert sc.lora_score(empty, target="z", served_ago=None) == 0.8
    assert sc.lora_score(full, target="w", served_ago=None) == 0.6
    assert sc.lora_score(None, target="a", served_ago=None) == 1.0
    assert sc.latency_score(2.0, best=1.0) == 0.5 and sc.latency_score(None, best=1.0) == 1.0
    assert sc.health_score(0.0) == 1.0 and sc.health_score(1.0) == 0.5
