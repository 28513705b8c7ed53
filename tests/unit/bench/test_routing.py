"""bench/routing's pure parts: traces, the filter config it gives our ext_proc, rows and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw.sim.config import load_config
from aigw.sim.tokenizer import chat_prompt_text, tokenize
from api.filterconfig import FilterConfig
from bench.routing import report
from bench.routing.loadgen import Outcome
from bench.routing.run import DEFAULT_SIM, DEFAULT_WORKLOADS
from bench.routing.setups import aigw_pickers, all_pickers, external_picker_config, filter_config
from bench.routing.workload import Workload, WorkloadError, load_workload, make_trace
from tests.realparts.simulators import Endpoint


def test_shipped_workloads_load_and_are_served_by_the_shipped_simulator() -> None:
    sim = load_config(DEFAULT_SIM)
    names = [load_workload(p).name for p in DEFAULT_WORKLOADS]
    assert names == ["chat-uniform", "shared-prefix", "lora-skew"]
    for p in DEFAULT_WORKLOADS:
        assert set(load_workload(p).models) <= {sim.model, *sim.lora_adapters}


def test_a_trace_is_the_same_for_the_same_arguments_and_poisson_at_the_rate() -> None:
    w = load_workload(DEFAULT_WORKLOADS[2])
    a = make_trace(w, rate=20, duration=100, seed=3)
    assert a == make_trace(w, rate=20, duration=100, seed=3)
    assert a != make_trace(w, rate=20, duration=100, seed=4)
    assert 1800 < len(a) < 2200
    assert all(0 <= x.at < 100 for x in a) and [x.at for x in a] == sorted(x.at for x in a)
    lora = [x for x in a if x.model != w.model]
    assert 0.75 < len(lora) / len(a) < 0.85
    first = sum(1 for x in lora if x.model == "lora-1")
    last = sum(1 for x in lora if x.model == "lora-8")
    assert first > 5 * last  # Zipf 1.2: 8**1.2 is about 12
    crit = [x.headers["x-gateway-inference-objective"] for x in a]
    assert 0.15 < crit.count("sheddable") / len(a) < 0.25


def test_prompt_tokens_match_the_simulators_tokenizer_and_prefixes_are_shared() -> None:
    w = load_workload(DEFAULT_WORKLOADS[1])
    trace = make_trace(w, rate=10, duration=30, seed=1)
    with_prefix = [x for x in trace if len(x.body["messages"]) == 2]
    assert 0.8 < len(with_prefix) / len(trace) < 0.97
    assert len({x.body["messages"][0]["content"] for x in with_prefix}) == 8
    for x in trace[:20]:
        contents = " ".join(m["content"] for m in x.body["messages"])
        assert len(tokenize(contents)) == x.prompt_tokens
        assert len(tokenize(chat_prompt_text(x.body["messages"]))) > x.prompt_tokens  # role tags on top


def test_bad_workload_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\nprompt_tokens: {median: 10}\noutput_tokens: {median: 5}\nloras: {share: 0.5}\n")
    with pytest.raises(WorkloadError, match=r"loras\.share > 0 needs loras\.adapters"):
        load_workload(bad)


def test_our_ext_proc_gets_a_valid_config_for_every_picker() -> None:
    eps = [Endpoint("127.0.0.81", 9000), Endpoint("127.0.0.82", 9000)]
    assert "aigw-random" in aigw_pickers()
    assert all_pickers()[:2] == ["random", "least-request"] and all_pickers()[-2:] == ["epp", "aigw-epp"]
    for picker_type in aigw_pickers().values():
        fc = FilterConfig.model_validate(filter_config(endpoints=eps, models=["m", "a1"], picker=picker_type))
        (pool,) = fc.pools
        assert [e.address for e in pool.members[0].endpoints] == ["127.0.0.81:9000", "127.0.0.82:9000"]
    fc = FilterConfig.model_validate(external_picker_config(endpoints=eps, models=["m"], epp_port=9002))
    (pool,) = fc.pools
    assert pool.serves_any_model and pool.external_picker is not None
    assert [e.address for e in pool.external_picker.endpoints] == ["127.0.0.1:9002"]
    assert pool.external_picker.target_ports == [9000] and not pool.external_picker.tls


def _outcome(status: int, ttft: float | None, e2e: float | None, done_at: float) -> Outcome:
    w = Workload.model_validate({"name": "w", "prompt_tokens": {"median": 4}, "output_tokens": {"median": 4}})
    item = make_trace(w, rate=1000, duration=1, seed=1)[0]
    return Outcome(item, 0.0, status, ttft, e2e, done_at, 4, "")


def test_rows_have_exactly_the_issue_keys_and_count_failures() -> None:
    outs = [_outcome(200, 0.01 * i, 0.1 * i, 1.0 + i / 10) for i in range(1, 11)]
    outs += [_outcome(429, None, None, 0.5), _outcome(503, None, None, 0.6), _outcome(0, None, None, 3.0)]
    row = report.result_row(workload="w", load=0.8, picker="epp", outcomes=outs, picker_cpu_s=0.013)
    assert tuple(row) == report.RESULT_KEYS
    assert (row["ttft_p50_ms"], row["ttft_p90_ms"], row["ttft_p99_ms"]) == (50.0, 90.0, 100.0)
    assert row["e2e_p90_ms"] == 900.0
    assert (row["shed_429"], row["errors_5xx"]) == (1, 2)
    assert row["throughput_rps"] == round(10 / 3.0, 2)
    assert row["extproc_cpu_us_per_req"] == 1000.0
    table = report.markdown_table([row, {**row, "picker": "random", "e2e_p90_ms": 1800.0}], {})
    assert "| 0.80 | random |" in table and "2.00x" in table


def test_the_table_replaces_only_its_own_block() -> None:
    text = "# B\nintro\n"
    once = report.replace_between_markers(text, "T1")
    twice = report.replace_between_markers(once + "after\n", "T2")
    assert (
        "T1" not in twice and "T2" in twice and twice.startswith("# B\nintro\n") and twice.endswith("after\n")
    )
