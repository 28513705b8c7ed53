"""Offline picker tuning: replay a ``bench/routing`` trace, in simulated time, against ``aigw.sim`` engines
(the simulator's pure batching engine, the same one its servers run) with our picker choosing each request's
replica. No Envoy, no sockets, no wall clock: one replay takes seconds, so weights can be compared quickly.

It is a tuning aid, not the benchmark: scrapes arrive every 50 ms with no network delay and nothing else
competes for the CPU. ``make bench-routing`` is what the README's claims rest on.

    PYTHONPATH=. .venv/bin/python -m bench.picker.tune --rate 8 --set weights.kvCache=2

Beyond the shipped set-up: ``--replica-sim slow.yaml`` (the first replicas run other simulator settings: a
slower or smaller server), ``--burst 6`` (requests arrive six at once, same mean rate) and ``--fault missing``
(the first replica's metrics fail; also ``frozen``, ``idle``: values that look fresh but lie). The last
column, the busiest replica's share of the requests, shows whether a picker piles onto one replica.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aigw.sim.config import SimConfig, load_config
from aigw.sim.engine import Engine, Sequence
from aigw.sim.kvcache import block_hashes as sim_block_hashes
from aigw.sim.tokenizer import chat_prompt_text, tokenize
from bench.routing.workload import TraceItem, load_workload, make_trace
from extproc.loadaware import LoadAwarePicker
from extproc.picker import PickRefusedError, PickRequest
from extproc.prefix import PrefixIndex, block_hashes, prompt_bytes
from extproc.promtext import LoraInfo
from extproc.signals import Lease, SignalStore
from extproc.snapshot import Pool, compile_bytes
from tests.unit.extproc.configs import pool_config

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_S = 0.05


@dataclass
class _Replica:
    engine: Engine
    address: str
    busy: bool = False
    seqs: dict[int, tuple[Sequence, Lease, float]] = field(default_factory=dict)


def _pool(sim: SimConfig, replicas: int, picker: dict[str, Any]) -> Pool:
    models = [{"modelName": m} for m in (sim.model, *sim.lora_adapters)]
    cfg = pool_config([(f"10.0.0.{i + 1}", 8000) for i in range(replicas)], models=models, picker=picker)
    item = compile_bytes(yaml.safe_dump(cfg).encode(), base_dir=ROOT).rules[0].backends.items[0]
    assert isinstance(item, Pool)
    return item


class EppLike:
    """The EPP v1.5.0 default profile, approximated for comparison: scraped data only; queue-scorer
    (min-max over waiting, all equal = 1) x2, kv-cache-utilization-scorer (1 - kv) x2, prefix-cache-scorer
    (matched / total blocks) x3; max score wins, ties at random."""

    def __init__(self, store: SignalStore, rng: random.Random) -> None:
        self.store, self.rng = store, rng
        self.index = PrefixIndex(capacity=200_000)

    def pick(self, request: PickRequest) -> Any:
        eps = list(request.pool.endpoints)
        self.rng.shuffle(eps)
        sig = [self.store.get(e.address) for e in eps]
        qs = [s.waiting for s in sig]
        lo, hi = min(qs), max(qs)
        hashes = block_hashes(
            model=request.target_model, prompt=prompt_bytes(request.document), block_chars=64, max_blocks=256
        )
        matches = self.index.matches(hashes)
        best, best_score = eps[0], -1.0
        for e, s in zip(eps, sig, strict=True):
            q = 1.0 if hi == lo else (hi - s.waiting) / (hi - lo)
            score = 2 * q + 2 * (1 - (s.kv_cache or 0.0))
            if hashes:
                score += 3 * matches.get(e.address, 0) / len(hashes)
            if score > best_score:
                best, best_score = e, score
        self.index.record(hashes, best.address)
        return best


def replay(
    trace: list[TraceItem],
    *,
    sim: SimConfig,
    replicas: int,
    picker: dict[str, Any],
    seed: int,
    replica_sims: tuple[SimConfig, ...] = (),
    fault: str = "none",
) -> dict[str, float]:
    """TTFT and e2e percentiles (ms) of one replay, and the busiest replica's share of the requests.
    ``replica_sims`` replace ``sim`` for the first replicas (heterogeneous pools); ``fault`` breaks the
    first replica's metrics: ``missing`` (every scrape fails: slow, absent or malformed pages), ``frozen``
    (its first values forever, looking fresh), ``idle`` (always reports an empty server)."""
    now = 0.0
    store = SignalStore(clock=lambda: now)
    chooser: Any = (
        EppLike(store, random.Random(seed))
        if picker.get("type") == "EppLike"
        else LoadAwarePicker(store=store, rng=random.Random(seed))
    )
    if picker.get("type") == "EppLike":
        picker = {}
    pool = _pool(sim, replicas, picker)
    sims = [replica_sims[i] if i < len(replica_sims) else sim for i in range(replicas)]
    reps = [_Replica(Engine(c), e.address) for c, e in zip(sims, pool.endpoints, strict=True)]
    served = dict.fromkeys([r.address for r in reps], 0)
    frozen: tuple[float, float, float] | None = None
    by_address = {r.address: r for r in reps}
    events: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    for item in trace:
        heapq.heappush(events, (item.at, next(order), "arrive", item))
    heapq.heappush(events, (0.0, next(order), "scrape", None))
    ttft: list[float] = []
    e2e: list[float] = []
    shed = 0
    pending = len(trace)

    def start_step(r: _Replica) -> None:
        plan = r.engine.begin_step()
        if plan is None:
            r.busy = False
            return
        r.busy = True
        heapq.heappush(events, (now + plan.duration_s, next(order), "step", r))

    while events and pending:
        now, _, kind, data = heapq.heappop(events)
        if kind == "scrape":
            for i, r in enumerate(reps):
                e = r.engine
                lora = LoraInfo(
                    running=frozenset(s.adapter for s in e.running if s.adapter),
                    waiting=frozenset(s.adapter for s in e.waiting if s.adapter),
                    max_lora=sims[i].max_loras,
                )
                values = (float(len(e.waiting)), float(len(e.running)), e.pool.used / e.pool.num_blocks)
                if i == 0 and fault == "missing":
                    store.get(r.address).record_scrape_failure(unreachable=False)
                    continue
                if i == 0 and fault == "frozen":
                    frozen = frozen or values
                    values = frozen
                if i == 0 and fault == "idle":
                    values = (0.0, 0.0, 0.0)
                store.get(r.address).record_scrape(
                    now=now, waiting=values[0], running=values[1], kv_cache=values[2], lora=lora
                )
            heapq.heappush(events, (now + SCRAPE_S, next(order), "scrape", None))
        elif kind == "arrive":
            arrival: TraceItem = data
            model = arrival.body["model"]
            pm = pool.models[model]
            pm = type(pm)(name=pm.name, criticality=_crit(arrival.criticality), targets=None)
            req = PickRequest(
                pool=pool, model=pm, target_model=model, headers={}, body_size=0, document=arrival.body
            )
            try:
                ep = chooser.pick(req)
            except PickRefusedError:
                shed += 1
                pending -= 1
                continue
            r = by_address[ep.address]
            served[r.address] += 1
            lease = store.begin(ep.address)
            body = arrival.body
            text = chat_prompt_text(body["messages"]) if "messages" in body else body["prompt"]
            tokens = tokenize(text) or ["<empty>"]
            adapter = model if model in sim.lora_adapters else None
            hashes = sim_block_hashes(tokens, block_size=sim.block_size, salt=adapter or sim.model)
            seq = r.engine.submit(
                prompt_len=len(tokens),
                block_hashes=hashes,
                max_tokens=arrival.max_tokens,
                adapter=adapter,
                now=now,
            )
            r.seqs[seq.rid] = (seq, lease, now)
            if not r.busy:
                start_step(r)
        else:
            r = data
            for ev in r.engine.finish_step(now):
                seq, lease, t0 = r.seqs[ev.seq.rid]
                if ev.first:
                    ttft.append(now - t0)
                    lease.first_byte()
                if ev.seq.done:
                    e2e.append(now - t0)
                    lease.end(status=200)
                    del r.seqs[ev.seq.rid]
                    pending -= 1
            start_step(r)
    return {
        "ttft_p50": _pct(ttft, 50),
        "ttft_p90": _pct(ttft, 90),
        "e2e_p50": _pct(e2e, 50),
        "e2e_p90": _pct(e2e, 90),
        "shed": float(shed),
        "busiest": max(served.values()) / max(1, sum(served.values())),
    }


def _bursts(trace: list[TraceItem], size: int) -> list[TraceItem]:
    """The same requests, each group of ``size`` consecutive ones arriving together (at the group's first
    arrival): burstier, at the same mean rate."""
    if size <= 1:
        return trace
    return [dataclasses.replace(t, at=trace[i - i % size].at) for i, t in enumerate(trace)]


def _crit(name: str) -> Any:
    from api.shared import Criticality

    return {"critical": Criticality.CRITICAL, "sheddable": Criticality.SHEDDABLE}.get(
        name.lower(), Criticality.STANDARD
    )


def _pct(xs: list[float], p: int) -> float:
    if not xs:
        return float("nan")
    return statistics.quantiles(xs, n=100)[p - 1] * 1000 if len(xs) > 1 else xs[0] * 1000


def _set(doc: dict[str, Any], dotted: str, value: str) -> None:
    *path, last = dotted.split(".")
    for p in path:
        doc = doc.setdefault(p, {})
    doc[last] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", type=Path, action="append")
    p.add_argument("--sim", type=Path, default=ROOT / "bench/routing/sim.yaml")
    p.add_argument("--rate", type=float, action="append", help="arrivals per second (repeat)")
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--replica-sim",
        type=Path,
        action="append",
        default=[],
        help="simulator YAML for the first replicas, in order (repeat; the rest use --sim)",
    )
    p.add_argument("--burst", type=int, default=1, help="arrivals come N at once (same mean rate)")
    p.add_argument(
        "--fault",
        choices=["none", "missing", "frozen", "idle"],
        default="none",
        help="the first replica's metrics",
    )
    p.add_argument(
        "--set", action="append", default=[], help="picker field=value (dotted, camelCase); repeat"
    )
    p.add_argument("--variant", action="append", default=[], help="NAME:field=value,field=value (repeat)")
    args = p.parse_args(argv)
    sim = load_config(args.sim)
    replica_sims = tuple(load_config(f) for f in args.replica_sim)
    workloads = args.workload or sorted((ROOT / "bench/routing/workloads").glob("*.yaml"))
    variants: dict[str, dict[str, Any]] = {
        "random": {"type": "Random"},
        "epp-like": {"type": "EppLike"},
        "default": {},
    }
    base: dict[str, Any] = {}
    for s in args.set:
        k, v = s.split("=", 1)
        _set(base, k, v)
    if base:
        variants["set"] = base
    for v in args.variant:
        name, _, spec = v.partition(":")
        doc: dict[str, Any] = {}
        for kv in spec.split(","):
            k, val = kv.split("=", 1)
            _set(doc, k, val)
        variants[name] = doc
    print("| workload | rate | picker | TTFT p50 | TTFT p90 | e2e p50 | e2e p90 | shed | busiest replica |")
    print("|---|---|---|---|---|---|---|---|---|")
    for wp in workloads:
        w = load_workload(wp)
        for rate in args.rate or [8.0]:
            for name, picker in variants.items():
                rows = [
                    replay(
                        _bursts(make_trace(w, rate=rate, duration=args.duration, seed=seed), args.burst),
                        sim=sim,
                        replicas=args.replicas,
                        picker=picker,
                        seed=seed,
                        replica_sims=replica_sims,
                        fault=args.fault,
                    )
                    for seed in range(1, args.seeds + 1)
                ]
                m = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
                print(
                    f"| {w.name} | {rate:g} | {name} | {m['ttft_p50']:.0f} | {m['ttft_p90']:.0f} | "
                    f"{m['e2e_p50']:.0f} | {m['e2e_p90']:.0f} | {m['shed']:.0f} | {m['busiest']:.0%} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
