"""The load-aware endpoint picker: filters, weighted scorers and criticality shedding over the fused signals.

Per request, over the pool's endpoints:
1. fuse each endpoint's scraped and passive signals (``scorers.fuse``) into load, queue and KV-cache use;
2. filter: drop unhealthy endpoints (unreachable scrape, recent failures); a filter that would drop every
   endpoint keeps them all;
3. shed: when every endpoint is saturated (queue or KV past the pool's thresholds), a ``Sheddable`` model's
   request gets 429 (with ``retry-after``), a ``Standard`` one only when every endpoint is past
   ``standardFactor`` times the thresholds, a ``Critical`` one never. Saturation decides shedding only, not
   which endpoint serves: dropping a saturated endpoint from the candidates would break prefix and LoRA
   affinity exactly when a cache miss costs most (its prefill stalls a full batch elsewhere); the load and
   KV scorers already weigh how busy each endpoint is against its affinity;
4. score the survivors (load, KV cache, prefix affinity, LoRA affinity, latency, health), weigh and sum;
   the best wins, ties broken at random. The load scorer counts a running request ``runningWeight`` (0.5)
   of a queued one: a queue delays a newcomer by whole batch-slot turns, a busier batch only lengthens its
   steps, so affinity is worth more against the latter;
5. remember the prompt's prefix blocks as served by the winner.

A pool configured ``type: Random`` gets the uniform draw and none of the above.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from api import picker as pk
from api.shared import Criticality
from extproc import scorers as sc
from extproc.picker import PickRefusedError, PickRequest, RandomPicker
from extproc.prefix import PrefixIndex, block_hashes, prompt_bytes
from extproc.signals import EndpointSignals, SignalStore
from extproc.snapshot import Pool, PoolEndpoint

KNOWN_ADAPTERS = 4096
"""How many adapter names the picker remembers (see ``LoadAwarePicker._adapters``)."""

_Row = tuple[PoolEndpoint, EndpointSignals, float, float | None, float, float]
"""endpoint, signals, weighted load, KV use, failure penalty, queue."""


class _Plan:
    """One pool's settings flattened for the hot path, and its endpoints paired with their signals. Built
    once per pool object (a config reload makes new pool objects, hence new plans)."""

    __slots__ = (
        "kv_limit",
        "load_scale",
        "pairs",
        "pool",
        "prefix",
        "q_limit",
        "running_weight",
        "saturation",
        "stale_after",
        "w_health",
        "w_kv",
        "w_latency",
        "w_load",
        "w_lora",
        "w_prefix",
    )

    def __init__(self, pool: Pool, store: SignalStore) -> None:
        cfg = pool.picker
        self.pool = pool
        self.pairs = [(e, store.get(e.address)) for e in pool.endpoints]
        self.stale_after = cfg.scrape.staleness_ms / 1000
        self.saturation = cfg.saturation
        self.q_limit = float(cfg.saturation.queue_depth)
        self.kv_limit = cfg.saturation.kv_cache
        self.load_scale = cfg.load_scale
        self.running_weight = cfg.running_weight
        self.prefix = cfg.prefix
        w = cfg.weights
        self.w_load, self.w_kv, self.w_prefix = w.load, w.kv_cache, w.prefix
        self.w_lora, self.w_latency, self.w_health = w.lora, w.latency, w.health


class LoadAwarePicker:
    """The ``EndpointPicker`` for every pool: load-aware unless the pool's config says ``Random``."""

    __slots__ = ("_adapters", "_plans", "_prefix", "_random", "_rng", "store")

    def __init__(self, *, store: SignalStore, rng: random.Random) -> None:
        self.store = store
        self._rng = rng
        self._random = RandomPicker(rng=rng)
        self._prefix: dict[str, tuple[int, PrefixIndex]] = {}
        self._plans: dict[int, _Plan] = {}
        self._adapters: dict[str, None] = {}
        """Target models some endpoint's metrics listed as a LoRA adapter (running or waiting), oldest
        first, at most ``KNOWN_ADAPTERS``. Only these get LoRA affinity: a base model is never listed, and
        remembering where we sent it would make the last endpoint that served it win every tie."""

    def prefix_index(self, pool: str, *, capacity: int) -> PrefixIndex:
        entry = self._prefix.get(pool)
        if entry is None or entry[0] != capacity:
            entry = self._prefix[pool] = (capacity, PrefixIndex(capacity=capacity))
        return entry[1]

    def _plan(self, pool: Pool) -> _Plan:
        plan = self._plans.get(id(pool))
        if plan is None or plan.pool is not pool:
            if len(self._plans) > 256:  # pools of old configs
                self._plans.clear()
            plan = self._plans[id(pool)] = _Plan(pool, self.store)
        return plan

    def pick(self, request: PickRequest) -> PoolEndpoint:
        pool = request.pool
        if pool.picker.type == pk.PickerType.RANDOM or not pool.endpoints:
            return self._random.pick(request)
        plan = self._plan(pool)
        now = self.store.clock()
        stale_after = plan.stale_after
        fuse, limit = sc.fuse, sc.HEALTH_PENALTY_LIMIT
        running_weight = plan.running_weight

        # 1-2: fuse, then filter by health
        healthy: list[_Row] = []
        unhealthy: list[_Row] = []
        for e, s in plan.pairs:
            load, queue, kv = fuse(s, now=now, stale_after=stale_after, running_weight=running_weight)
            penalty = s.penalty_now(now) if s.penalty else 0.0
            # inline sc.healthy: this loop runs for every endpoint of every request
            if s.unreachable or penalty >= limit:
                unhealthy.append((e, s, load, kv, penalty, queue))
            else:
                healthy.append((e, s, load, kv, penalty, queue))
        # a filter that would drop every endpoint keeps them all
        rows = healthy or unhealthy
        least_sat = _least_saturation(rows, queue_limit=plan.q_limit, kv_limit=plan.kv_limit)
        if least_sat >= 1.0:  # 3: every candidate saturated
            _maybe_shed(request, least_sat=least_sat, settings=plan.saturation)

        # 4: score
        loads = [r[2] for r in rows]
        least = min(loads)
        spread = max(max(loads) - least, plan.load_scale)
        hashes: list[int] = []
        matches: Mapping[str, int] = {}
        index: PrefixIndex | None = None
        target = request.target_model
        if plan.w_prefix > 0.0:
            p = plan.prefix
            index = self.prefix_index(pool.name, capacity=p.capacity)
            hashes = block_hashes(
                model=target,
                prompt=prompt_bytes(request.document),
                block_chars=p.block_chars,
                max_blocks=p.max_blocks,
            )
            matches = index.matches(hashes)
        w_lora = plan.w_lora
        use_lora = w_lora > 0.0 and self._is_adapter(target, rows)
        best_latency = 0.0
        w_latency = plan.w_latency
        if w_latency > 0.0:
            known = [r[1].latency for r in rows if r[1].latency]
            best_latency = min(known) if known else 0.0
        w_load, w_kv, w_prefix, w_health = plan.w_load, plan.w_kv, plan.w_prefix, plan.w_health
        load_score, kv_score = sc.load_score, sc.kv_score
        # the few endpoints that served this prefix, scored once (the others' prefix term is 0)
        total_blocks = len(hashes)
        prefix_terms = {
            a: w_prefix * sc.prefix_score(m, total_blocks=total_blocks) for a, m in matches.items()
        }
        n = len(rows)
        start = int(self._rng.random() * n)
        best_score = -1.0
        best_row = rows[start]
        for r in rows[start:] + rows[:start]:  # from a random start: ties go to a random endpoint
            e, s, load, kv, penalty, _ = r
            score = w_load * load_score(load, least=least, spread=spread)
            if w_kv:
                score += w_kv * kv_score(kv)
            if prefix_terms:
                score += prefix_terms.get(e.address, 0.0)
            if use_lora:
                at = s.recent_models.get(target)
                ago = None if at is None else now - at
                score += w_lora * sc.lora_score(s.lora, target=target, served_ago=ago)
            if best_latency:
                score += w_latency * sc.latency_score(s.latency, best=best_latency)
            if penalty:  # w * health_score, less the constant w every healthy endpoint would add
                score += w_health * (sc.health_score(penalty) - 1.0)
            if score > best_score:
                best_score = score
                best_row = r
        chosen = best_row[0]
        if w_lora > 0.0:
            best_row[1].served_model(target, now)
        # 5: affinity for the next requests with this prefix
        if index is not None and hashes:
            index.record(hashes, chosen.address)
        return chosen

    def _is_adapter(self, target: str, rows: list[_Row]) -> bool:
        """Whether LoRA affinity applies to ``target``: some endpoint's metrics listed it as an adapter, at
        any scrape (an idle adapter stays loaded but leaves the metrics; a short request may come and go
        between two picks)."""
        adapters = self._adapters
        if target in adapters:
            return True
        for r in rows:  # a plain loop: a generator costs per item
            if target in r[1].adapters:
                break
        else:
            return False
        adapters[target] = None
        if len(adapters) > KNOWN_ADAPTERS:
            del adapters[next(iter(adapters))]
        return True


def _least_saturation(rows: list[_Row], *, queue_limit: float, kv_limit: float) -> float:
    """The least saturation among ``rows`` when every one is saturated (>= 1); else the first value below 1
    found (enough to know that nothing is shed; most requests stop at the first endpoint)."""
    least = math.inf
    saturation = sc.saturation
    for r in rows:
        sat = saturation(queue=r[5], kv_cache=r[3], queue_limit=queue_limit, kv_limit=kv_limit)
        if sat < 1.0:
            return sat
        if sat < least:
            least = sat
    return least


def _maybe_shed(request: PickRequest, *, least_sat: float, settings: pk.SaturationSettings) -> None:
    """Every endpoint is saturated (the least saturated at ``least_sat``): refuse what may be shed."""
    crit = request.model.criticality
    if crit == Criticality.CRITICAL:
        return
    if crit == Criticality.STANDARD and least_sat < settings.standard_factor:
        return
    raise PickRefusedError(
        status=429,
        message=(
            f"InferencePool {request.pool.name} is saturated; {crit.value} request for model "
            f"{request.model.name!r} dropped, retry later"
        ),
        retry_after=settings.retry_after_seconds,
    )
