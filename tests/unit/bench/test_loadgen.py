"""The load generator against an in-process simulated replica: every trace item sent at its time, TTFT before
the end, the usage chunk read, and a refused request counted with its status."""

from __future__ import annotations

from aigw.sim.config import SimConfig
from aigw.sim.server import Replica
from bench.routing import loadgen
from bench.routing.workload import Workload, make_trace

FAST = {"step_base_ms": 2.0, "decode_ms_per_seq": 0.1, "prefill_ms_per_token": 0.01, "lora_adapters": ["a1"]}


async def test_replay_measures_ttft_e2e_and_tokens() -> None:
    r = Replica(name="lg", config=SimConfig.model_validate(FAST))
    await r.start()
    try:
        w = Workload.model_validate(
            {
                "name": "t",
                "prompt_tokens": {"median": 50},
                "output_tokens": {"median": 12, "sigma": 0.3, "max": 40},
                "loras": {"adapters": ["a1", "nope"], "share": 0.3},
            }
        )
        trace = make_trace(w, rate=40, duration=1.0, seed=2)
        outs = await loadgen.replay(r.url, trace)
    finally:
        await r.stop()
    assert [o.item for o in outs] == trace
    for o in outs:
        assert o.sent_at >= o.item.at - 0.01  # never early
        if o.item.model == "nope":
            assert o.status == 404 and o.ttft is None
            continue
        assert o.status == 200 and o.ttft is not None and o.e2e is not None
        assert 0 < o.ttft <= o.e2e
        assert o.completion_tokens == o.item.max_tokens
        assert o.upstream == f"127.0.0.1:{r.port}"
    assert any(o.status == 404 for o in outs) and any(o.status == 200 for o in outs)


async def test_closed_loop_keeps_the_concurrency_and_counts_only_finished_requests() -> None:
    r = Replica(name="cl", config=SimConfig.model_validate({**FAST, "max_num_seqs": 2}))
    await r.start()
    try:
        w = Workload.model_validate(
            {"name": "t", "prompt_tokens": {"median": 20}, "output_tokens": {"median": 5, "sigma": 0}}
        )
        outs = await loadgen.closed_loop(
            r.url, make_trace(w, rate=10, duration=5, seed=1), concurrency=4, duration=1.0
        )
        finished = r.engine.counters.finished
    finally:
        await r.stop()
    assert outs and all(o.status == 200 and o.done_at <= 1.0 for o in outs)
    assert finished >= len(outs)
