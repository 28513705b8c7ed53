"""The minimal Prometheus text reader agrees with prometheus_client's parser on the series it reads."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from extproc import promtext

PAGE = b"""vllm:num_requests_running{model_name="m"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 7.0
vllm:num_requests_waiting_total 99
vllm:num_requests_waiting{model_name="n"} 2
vllm:kv_cache_usage_perc{model_name="m"} 0.25
vllm:lora_requests_info{max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters=""} 1.7e9
vllm:lora_requests_info{max_lora="2",running_lora_adapters="a",waiting_lora_adapters="c"} 1.8e9
vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 1.6e9
"""


def test_totals_sum_every_series_of_exactly_that_name() -> None:
    assert promtext.total(PAGE, b"vllm:num_requests_waiting") == 9.0
    assert promtext.total(PAGE, b"vllm:num_requests_running") == 3.0  # on the page's first line
    assert promtext.total(PAGE, b"vllm:absent") is None


def test_agrees_with_prometheus_client() -> None:
    every = [s for f in text_string_to_metric_families(PAGE.decode()) for s in f.samples]
    waiting = sum(s.value for s in every if s.name == "vllm:num_requests_waiting")
    assert promtext.total(PAGE, b"vllm:num_requests_waiting") == waiting
    kv = max(s.value for s in every if s.name == "vllm:kv_cache_usage_perc")
    assert promtext.maximum(PAGE, b"vllm:kv_cache_usage_perc") == kv


def test_lora_info_takes_the_newest_series() -> None:
    info = promtext.lora_info(PAGE, b"vllm:lora_requests_info")
    assert info is not None
    assert info.running == frozenset({"a"})
    assert info.waiting == frozenset({"c"})
    assert info.max_lora == 2


def test_labels_unescape_and_need_a_boundary() -> None:
    raw = b'xmax_lora="9",max_lora="3",name="a\\"b"'
    assert promtext.label(raw, b"max_lora") == "3"
    assert promtext.label(raw, b"name") == 'a"b'
    assert promtext.label(raw, b"other") is None


def test_garbage_lines_are_skipped() -> None:
    page = (
        b'vllm:num_requests_waiting{x="1"} notanumber\nvllm:num_requests_waiting 4\nvllm:num_requests_waiting'
    )
    assert promtext.total(page, b"vllm:num_requests_waiting") == 4.0
