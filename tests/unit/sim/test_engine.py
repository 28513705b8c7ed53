"""The engine under a deterministic clock: queueing, batching, KV exhaustion, prefix reuse, LoRA slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from aigw.sim.config import SimConfig
from aigw.sim.engine import Engine, RequestRejectedError, Sequence, StepPlan
from aigw.sim.kvcache import block_hashes
from aigw.sim.tokenizer import tokenize


def cfg(**kw: Any) -> SimConfig:
    base: dict[str, Any] = {
        "step_base_ms": 10.0,
        "decode_ms_per_seq": 1.0,
        "prefill_ms_per_token": 0.1,
        "lora_load_ms": 50.0,
        "block_size": 16,
        "kv_blocks": 1024,
        "max_num_seqs": 16,
    }
    base.update(kw)
    return SimConfig.model_validate(base)


@dataclass
class Clock:
    """Drives an engine step by step on a virtual clock."""

    engine: Engine
    now: float = 0.0
    plans: list[StepPlan] = field(default_factory=list)

    def submit(
        self, tokens: int, *, max_tokens: int, adapter: str | None = None, prefix: str = "p"
    ) -> Sequence:
        words = [f"{prefix}{i:03d}" for i in range(tokens)]  # 4 chars each: one token per word
        toks = tokenize(" ".join(words))
        assert len(toks) == tokens
        salt = adapter or self.engine.config.model
        hashes = block_hashes(toks, block_size=self.engine.config.block_size, salt=salt)
        return self.engine.submit(
            prompt_len=tokens, block_hashes=hashes, max_tokens=max_tokens, adapter=adapter, now=self.now
        )

    def step(self) -> StepPlan | None:
        plan = self.engine.begin_step()
        if plan is None:
            return None
        self.plans.append(plan)
        self.now += plan.duration_s
        self.engine.finish_step(self.now)
        return plan

    def run(self, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            if self.step() is None:
                return
        raise AssertionError("engine did not go idle")


def test_waiting_queue_beyond_max_num_seqs_is_served_first_come_first_served() -> None:
    c = Clock(Engine(cfg(max_num_seqs=2)))
    a, b, d = (c.submit(16, max_tokens=3, prefix=x) for x in "abd")
    plan = c.step()
    assert plan is not None and plan.running == 2 and plan.admitted == 2
    assert c.engine.running == [a, b] and list(c.engine.waiting) == [d]
    c.step()
    c.step()  # a and b produce their 3rd token and leave
    assert a.done and b.done and not d.done and d.first_token_at is None
    c.step()
    assert d.first_token_at is not None and d.first_token_at > a.finished_at  # type: ignore[operator]
    c.run()
    assert d.done and c.engine.counters.finished == 3


def test_decode_step_time_grows_with_batch_size_and_prefill_with_prompt_tokens() -> None:
    def decode_step_ms(batch: int) -> float:
        c = Clock(Engine(cfg()))
        for i in range(batch):
            c.submit(16, max_tokens=5, prefix=f"{i:x}")
        c.step()  # the prefill step
        plan = c.step()
        assert plan is not None and plan.prefill_tokens == 0 and plan.running == batch
        return plan.duration_s * 1000

    assert decode_step_ms(1) == pytest.approx(11.0)
    assert decode_step_ms(8) == pytest.approx(18.0)

    short, long = Clock(Engine(cfg())), Clock(Engine(cfg()))
    short.submit(100, max_tokens=1)
    long.submit(1000, max_tokens=1)
    ps, pl = short.step(), long.step()
    assert ps is not None and pl is not None
    assert (ps.prefill_tokens, pl.prefill_tokens) == (100, 1000)
    assert pl.duration_s - ps.duration_s == pytest.approx(0.09)  # 900 more tokens at 0.1 ms


def test_ttft_and_tpot_come_from_the_model() -> None:
    c = Clock(Engine(cfg()))
    s = c.submit(200, max_tokens=4)
    c.run()
    assert s.first_token_at == pytest.approx((10 + 1 + 20) / 1000)
    assert s.finished_at == pytest.approx(s.first_token_at + 3 * 0.011)  # type: ignore[operator]


def test_full_kv_cache_makes_new_requests_wait_and_growth_preempts_the_newest() -> None:
    # 10 blocks of 16 tokens. Each request needs ceil((64 + 1) / 16) = 5 blocks to start.
    c = Clock(Engine(cfg(kv_blocks=10, enable_prefix_caching=False)))
    a, b, d = (c.submit(64, max_tokens=20, prefix=x) for x in "abd")
    c.step()
    assert c.engine.running == [a, b] and list(c.engine.waiting) == [
        d
    ]  # room in the batch, none in the cache
    assert c.engine.pool.used == 10 and c.engine.pool.free == 0
    # a and b then hold 65 tokens; tokens up to the 80th fit in 5 blocks; the 81st needs a 6th, none is free.
    while a.generated < 17:
        c.step()
    assert c.engine.counters.preemptions == 1
    assert c.engine.running == [a] and list(c.engine.waiting)[:1] == [b]  # the newest went back to the front
    c.run()
    assert a.done and b.done and d.done
    assert b.preemptions == 1 and c.engine.pool.used == 0


def test_request_too_large_for_the_cache_or_the_model_is_rejected() -> None:
    e = Engine(cfg(kv_blocks=4, max_model_len=1000))
    with pytest.raises(RequestRejectedError, match="KV-cache blocks"):
        e.submit(prompt_len=60, block_hashes=[], max_tokens=10, adapter=None, now=0)
    with pytest.raises(RequestRejectedError, match="maximum context length is 1000"):
        e.submit(prompt_len=990, block_hashes=[], max_tokens=11, adapter=None, now=0)


def test_a_shared_prefix_is_reused_and_shortens_prefill() -> None:
    c = Clock(Engine(cfg()))
    first = c.submit(100, max_tokens=2)
    c.run()
    second = c.submit(100, max_tokens=2)
    plan = c.step()
    assert plan is not None
    assert second.prefix_hit_tokens == 96  # six full 16-token blocks; the partial 7th is recomputed
    assert plan.prefill_tokens == 4
    assert c.engine.counters.prefix_queries == 200 and c.engine.counters.prefix_hits == 96
    c.run()
    ttft1 = first.first_token_at - first.arrival  # type: ignore[operator]
    ttft2 = second.first_token_at - second.arrival  # type: ignore[operator]
    assert ttft2 < ttft1


def test_prefix_cache_is_keyed_by_adapter_and_disabled_by_config() -> None:
    c = Clock(Engine(cfg(lora_adapters=["a1"])))
    c.submit(64, max_tokens=1)
    c.run()
    s = c.submit(64, max_tokens=1, adapter="a1")
    c.run()
    assert s.prefix_hit_tokens == 0
    off = Clock(Engine(cfg(enable_prefix_caching=False)))
    off.submit(64, max_tokens=1)
    off.run()
    again = off.submit(64, max_tokens=1)
    off.run()
    assert again.prefix_hit_tokens == 0


def test_cached_prefix_blocks_are_evicted_least_recently_released_first() -> None:
    # 8 blocks; each 32-token prompt with max_tokens 1 needs 3 blocks (2 full, hashed + 1 for the next token).
    c = Clock(Engine(cfg(kv_blocks=8)))
    for p in "abc":
        c.submit(32, max_tokens=1, prefix=p)
        c.run()
    assert c.engine.pool.cached == 6 and c.engine.pool.used == 0
    c.submit(32, max_tokens=1, prefix="d")  # needs 3 blocks: 2 free plain + 1 evicted (the oldest: a's)
    c.run()
    hit_a = c.submit(32, max_tokens=1, prefix="a")
    c.run()
    hit_c = c.submit(32, max_tokens=1, prefix="c")
    c.run()
    assert hit_a.prefix_hit_tokens < 32
    assert hit_c.prefix_hit_tokens == 32


def test_lora_slots_limit_adapters_and_loading_costs_time() -> None:
    c = Clock(Engine(cfg(lora_adapters=["x", "y"], max_loras=1)))
    x = c.submit(16, max_tokens=3, adapter="x", prefix="x")
    y = c.submit(16, max_tokens=3, adapter="y", prefix="y")
    base = c.submit(16, max_tokens=3, prefix="b")
    plan = c.step()
    assert plan is not None and plan.adapters_loaded == 1
    assert plan.duration_s == pytest.approx((10 + 2 * 1 + 32 * 0.1 + 50) / 1000)
    assert c.engine.running == [x, base] and list(c.engine.waiting) == [y]  # y passed over, base admitted
    assert list(c.engine.loaded_adapters) == ["x"]
    c.step()
    c.step()  # x finishes: its slot can be reused
    plan = c.step()
    assert plan is not None and plan.adapters_loaded == 1 and list(c.engine.loaded_adapters) == ["y"]
    c.run()
    assert y.done
    again = Clock(c.engine, now=c.now)
    y2 = again.submit(16, max_tokens=1, adapter="y", prefix="z")
    plan = again.step()
    assert plan is not None and plan.adapters_loaded == 0 and y2.done  # already loaded: no cost


def test_abort_frees_the_place_in_the_batch() -> None:
    c = Clock(Engine(cfg(max_num_seqs=1)))
    a = c.submit(16, max_tokens=100)
    b = c.submit(16, max_tokens=1, prefix="b")
    c.step()
    c.engine.abort(a)
    assert c.engine.running == [] and c.engine.pool.used == 0
    c.run()
    assert b.done and not a.done


def test_same_trace_gives_identical_timings() -> None:
    def run() -> list[tuple[float | None, float | None]]:
        c = Clock(Engine(cfg(max_num_seqs=3, kv_blocks=40, lora_adapters=["x"], max_loras=1)))
        seqs = []
        for i in range(12):
            c.now = i * 0.013
            seqs.append(c.submit(20 + 7 * i, max_tokens=3 + i % 5, adapter="x" if i % 3 == 0 else None))
            c.step()
        c.run()
        return [(s.first_token_at, s.finished_at) for s in seqs]

    first = run()
    assert all(f is not None for _, f in first)
    assert first == run()
