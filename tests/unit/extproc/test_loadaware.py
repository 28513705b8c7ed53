"""The load-aware picker over fake signals: filters, scorers, affinity and criticality shedding."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from extproc.loadaware import LoadAwarePicker
from extproc.picker import PickRefusedError, PickRequest
from extproc.promtext import LoraInfo
from extproc.signals import SignalStore
from extproc.snapshot import Pool, PoolModel
from tests.unit.extproc.configs import pool_config, snapshot_of

ADDRS = [f"10.0.0.{i}:8000" for i in range(1, 5)]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _pool(picker: dict[str, Any] | None = None, *, n: int = 4) -> Pool:
    cfg = pool_config(
        [(a.split(":")[0], 8000) for a in ADDRS[:n]],
        models=[{"modelName": c.lower(), "criticality": c} for c in ("Critical", "Standard", "Sheddable")],
        picker=picker,
    )
    item = snapshot_of(cfg).rules[0].backends.items[0]
    assert isinstance(item, Pool)
    return item


def _request(
    pool: Pool, *, criticality: str = "standard", target: str = "base", prompt: str = ""
) -> PickRequest:
    model: PoolModel = pool.models[criticality]
    doc = {"model": criticality, "messages": [{"role": "user", "content": prompt}]}
    return PickRequest(pool=pool, model=model, target_model=target, headers={}, body_size=0, document=doc)


def _setup(picker_cfg: dict[str, Any] | None = None) -> tuple[Clock, SignalStore, LoadAwarePicker, Pool]:
    clock = Clock()
    store = SignalStore(clock=clock)
    return clock, store, LoadAwarePicker(store=store, rng=random.Random(7)), _pool(picker_cfg)


def _scrape(
    store: SignalStore,
    clock: Clock,
    addr: str,
    *,
    waiting: float = 0,
    running: float = 0,
    kv: float = 0.1,
    lora: LoraInfo | None = None,
) -> None:
    store.get(addr).record_scrape(now=clock.t, waiting=waiting, running=running, kv_cache=kv, lora=lora)


def test_avoids_the_endpoint_with_a_long_queue() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(store, clock, a, running=4)
    _scrape(store, clock, ADDRS[2], waiting=4, running=8)
    picks = Counter(picker.pick(_request(pool)).address for _ in range(40))
    assert ADDRS[2] not in picks
    assert len(picks) == 3  # ties broken at random among the others


def test_in_flight_picks_count_before_the_next_scrape() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    leases = []
    for _ in range(8):
        e = picker.pick(_request(pool))
        leases.append(store.begin(e.address))
    assert sorted(store.get(a).inflight for a in ADDRS) == [2, 2, 2, 2]  # spread, though no scrape since


def test_stale_scrapes_are_not_trusted() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(store, clock, a, waiting=0, running=1)
    _scrape(store, clock, ADDRS[0], waiting=30, running=8)
    clock.t += 10
    picks = Counter(picker.pick(_request(pool)).address for _ in range(40))
    assert picks[ADDRS[0]] > 0  # the old queue no longer keeps it out


def test_unhealthy_endpoints_are_filtered_while_others_remain() -> None:
    clock, store, picker, pool = _setup()
    for _ in range(4):
        store.begin(ADDRS[0]).end(status=503)  # fails fast: must not attract traffic
    store.get(ADDRS[1]).record_scrape_failure(unreachable=True)
    picks = Counter(picker.pick(_request(pool)).address for _ in range(40))
    assert set(picks) == {ADDRS[2], ADDRS[3]}
    clock.t += 30  # recovered: traffic returns
    store.get(ADDRS[1]).record_scrape(now=clock.t, waiting=0, running=0, kv_cache=0.1, lora=None)
    later: Counter[str] = Counter()
    for _ in range(20):  # requests stay open, as under load
        address = picker.pick(_request(pool)).address
        store.begin(address)
        later[address] += 1
    assert set(later) == set(ADDRS)


def test_all_unhealthy_still_serves() -> None:
    _, store, picker, pool = _setup()
    for a in ADDRS:
        store.get(a).record_scrape_failure(unreachable=True)
    assert picker.pick(_request(pool)).address in ADDRS


def test_endpoints_without_usable_metrics_share_the_traffic_by_in_flight_count() -> None:
    """Metrics that are missing, malformed or too slow (a failed scrape, not a failed connect) leave an
    endpoint to our in-flight count: held-open requests spread over every endpoint, never onto one."""
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        store.get(a).record_scrape_failure(unreachable=False)
    picks: Counter[str] = Counter()
    for _ in range(40):
        address = picker.pick(_request(pool)).address
        store.begin(address)
        picks[address] += 1
    assert sorted(picks.values()) == [10, 10, 10, 10]
    # one endpoint's metrics work again (a batch of 32 seen before): it is weighed by its real load
    _scrape(store, clock, ADDRS[0], running=32)
    _scrape(store, clock, ADDRS[0], running=float(store.get(ADDRS[0]).inflight))
    more: Counter[str] = Counter()
    for _ in range(40):
        address = picker.pick(_request(pool)).address
        store.begin(address)
        more[address] += 1
    assert all(8 <= more[a] <= 12 for a in ADDRS), more


def test_shared_prefix_concentrates_when_load_allows() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    system = "You are a helpful assistant. " * 40
    first = picker.pick(_request(pool, prompt=system + "q0")).address
    same = Counter(picker.pick(_request(pool, prompt=system + f"question {i}")).address for i in range(10))
    assert same == {first: 10}


def test_prefix_affinity_yields_to_a_queue() -> None:
    clock, store, picker, pool = _setup()
    system = "You are a helpful assistant. " * 40
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    first = picker.pick(_request(pool, prompt=system)).address
    _scrape(store, clock, first, waiting=4, running=8)  # busy now: prefix is not worth a queue
    assert picker.pick(_request(pool, prompt=system)).address != first
    _scrape(store, clock, first, waiting=10, running=8)  # saturated as well: the load scorer keeps it out
    assert picker.pick(_request(pool, prompt=system)).address != first


@pytest.mark.parametrize(("running_weight", "stays"), [(None, True), (1.0, False)])
def test_a_busier_batch_costs_less_affinity_than_a_queue(running_weight: float | None, stays: bool) -> None:
    # The prefix holder runs 4 more requests than the others, none queued: by default (a running request
    # counts half a queued one) the saved prefill outweighs them; counting them as queued ones, it does not.
    clock, store, picker, pool = _setup(None if running_weight is None else {"runningWeight": running_weight})
    system = "You are a helpful assistant. " * 40
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    first = picker.pick(_request(pool, prompt=system + "q0")).address
    for a in ADDRS:
        _scrape(store, clock, a, running=8 if a == first else 4)
    picks = Counter(picker.pick(_request(pool, prompt=system + f"q{i}")).address for i in range(1, 6))
    assert (picks == {first: 5}) is stays, picks


@pytest.mark.parametrize(
    ("busy", "others"),
    [
        ({"waiting": 5, "running": 8}, {"waiting": 4, "running": 8}),
        ({"running": 8, "kv": 0.85}, {"running": 8}),
    ],
    ids=["queue", "kv-cache"],
)
def test_prefix_affinity_holds_on_a_saturated_endpoint_when_others_are_nearly_as_busy(
    busy: dict[str, float], others: dict[str, float]
) -> None:
    # Near capacity every replica is about as busy; the one holding the prefix saves a full prefill, which on
    # another replica would also stall its whole batch. Saturation alone must not break affinity (it did
    # when saturated endpoints were filtered out of the candidates).
    clock, store, picker, pool = _setup()
    system = "You are a helpful assistant. " * 40
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    first = picker.pick(_request(pool, prompt=system + "q0")).address
    for a in ADDRS:
        _scrape(store, clock, a, **(busy if a == first else others))
    picks = Counter(picker.pick(_request(pool, prompt=system + f"q{i}")).address for i in range(1, 6))
    assert picks == {first: 5}


def test_lora_prefers_endpoints_with_the_adapter() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(
            store,
            clock,
            a,
            running=2,
            lora=LoraInfo(running=frozenset({"x", "y"}), waiting=frozenset(), max_lora=2),
        )
    _scrape(
        store,
        clock,
        ADDRS[3],
        running=3,
        lora=LoraInfo(running=frozenset({"sql"}), waiting=frozenset(), max_lora=2),
    )
    picks = Counter(picker.pick(_request(pool, target="sql")).address for _ in range(10))
    assert picks == {ADDRS[3]: 10}
    base = Counter(picker.pick(_request(pool, target="base")).address for _ in range(30))
    assert ADDRS[3] not in base  # a base-model request goes by load alone


def test_lora_affinity_learns_an_adapter_listed_only_between_picks() -> None:
    """A request for an adapter may start and end between two picks (the only one in flight): the scrapes
    that listed it while it ran must still teach the picker that it is an adapter."""
    clock, store, picker, pool = _setup()
    idle = LoraInfo(running=frozenset(), waiting=frozenset(), max_lora=1)
    for a in ADDRS:
        _scrape(store, clock, a, lora=idle)
    home = picker.pick(_request(pool, target="sql")).address  # not yet known as an adapter: by load
    clock.t += 0.5
    _scrape(
        store,
        clock,
        home,
        running=1,
        lora=LoraInfo(running=frozenset({"sql"}), waiting=frozenset(), max_lora=1),
    )
    clock.t += 0.5
    for a in ADDRS:
        _scrape(store, clock, a, lora=idle)  # it has ended before the next pick
    picks = Counter(picker.pick(_request(pool, target="sql")).address for _ in range(12))
    assert picks == {home: 12}


def test_lora_remembers_where_it_sent_an_adapter() -> None:
    """Servers list only adapters of running requests; an idle adapter stays loaded, which we remember."""
    clock, store, picker, pool = _setup()
    full = LoraInfo(running=frozenset({"x"}), waiting=frozenset(), max_lora=1)
    for a in ADDRS:
        _scrape(store, clock, a, running=1, lora=full)
    first = picker.pick(_request(pool, target="sql")).address
    clock.t += 1
    running_sql = LoraInfo(running=frozenset({"sql"}), waiting=frozenset(), max_lora=1)
    _scrape(store, clock, first, running=1, lora=running_sql)  # the server lists it while it runs
    picker.pick(_request(pool, target="sql"))
    clock.t += 1
    for a in ADDRS:
        _scrape(store, clock, a, running=1, lora=full)  # "sql" finished: not listed anywhere
    assert Counter(picker.pick(_request(pool, target="sql")).address for _ in range(10)) == {first: 10}


def test_lora_affinity_never_applies_to_a_base_model() -> None:
    """A base model is never listed as an adapter: where we last sent it must not win every tie."""
    clock, store, picker, pool = _setup()
    slots = LoraInfo(running=frozenset({"x"}), waiting=frozenset(), max_lora=4)
    for a in ADDRS:
        _scrape(store, clock, a, running=1, lora=slots)
    picks = Counter(picker.pick(_request(pool, target="base")).address for _ in range(200))
    assert set(picks) == set(ADDRS)  # ties at random, not all on the first endpoint that served it


def test_shedding_by_criticality() -> None:
    clock, store, picker, pool = _setup()
    for a in ADDRS:
        _scrape(store, clock, a, waiting=6, running=8)
    with pytest.raises(PickRefusedError) as e:
        picker.pick(_request(pool, criticality="sheddable"))
    assert e.value.status == 429 and e.value.retry_after == 1
    assert picker.pick(_request(pool, criticality="standard")).address in ADDRS  # 6 < 2 x 5
    assert picker.pick(_request(pool, criticality="critical")).address in ADDRS
    for a in ADDRS:
        _scrape(store, clock, a, waiting=12, running=8)
    with pytest.raises(PickRefusedError):
        picker.pick(_request(pool, criticality="standard"))
    for _ in range(20):
        assert picker.pick(_request(pool, criticality="critical")).address in ADDRS  # never shed
    _scrape(store, clock, ADDRS[1], waiting=0, running=8, kv=0.5)  # one endpoint has room: nothing is shed
    assert picker.pick(_request(pool, criticality="sheddable")).address == ADDRS[1]


def test_kv_cache_saturation_sheds_too() -> None:
    clock, store, picker, pool = _setup({"saturation": {"kvCache": 0.9, "retryAfterSeconds": 5}})
    for a in ADDRS:
        _scrape(store, clock, a, kv=0.95)
    with pytest.raises(PickRefusedError) as e:
        picker.pick(_request(pool, criticality="sheddable"))
    assert e.value.retry_after == 5


def test_random_by_config_ignores_signals() -> None:
    clock, store, picker, pool = _setup({"type": "Random"})
    for a in ADDRS:
        _scrape(store, clock, a, waiting=50, running=8)
    picks = Counter(picker.pick(_request(pool, criticality="sheddable")).address for _ in range(80))
    assert set(picks) == set(ADDRS)


def test_no_endpoints_is_503() -> None:
    _, _, picker, _ = _setup()
    empty = _pool(n=0)
    with pytest.raises(PickRefusedError) as e:
        picker.pick(_request(empty))
    assert e.value.status == 503


def test_weights_are_per_pool_and_zero_turns_a_scorer_off() -> None:
    clock, store, picker, pool = _setup({"weights": {"prefix": 0}})
    for a in ADDRS:
        _scrape(store, clock, a, running=2)
    system = "You are a helpful assistant. " * 40
    picks: Counter[str] = Counter()
    for i in range(40):
        e = picker.pick(_request(pool, prompt=system + str(i)))
        picks[e.address] += 1
    assert len(picks) == 4
    assert picker.prefix_index("p.ns", capacity=200_000).matches([1]) == {}
