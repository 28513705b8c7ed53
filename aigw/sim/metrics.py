"""vLLM's /metrics for one replica: the gauges and counters the endpoint pickers read, and latency histograms.

Gauges and counters are read from the engine at scrape time (a custom collector, so they are never stale);
histograms are observed when requests finish. Names, types and labels are vLLM's:
``vllm:num_requests_waiting``, ``vllm:num_requests_running``, ``vllm:kv_cache_usage_perc`` and the older
``vllm:gpu_cache_usage_perc`` (0-1), ``vllm:lora_requests_info`` (labels ``running_lora_adapters``,
``waiting_lora_adapters``, ``max_lora``; the value is the time the label set last changed),
``vllm:cache_config_info`` (labels ``block_size``, ``num_gpu_blocks``), the token counters
``vllm:prefix_cache_queries`` / ``vllm:prefix_cache_hits``, and the histograms
``vllm:time_to_first_token_seconds``, ``vllm:time_per_output_token_seconds`` (each request's mean gap between
tokens) and ``vllm:e2e_request_latency_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aigw.sim.engine import Engine, Sequence

_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)


class _EngineCollector(Collector):
    """Reads the engine's queue, batch, cache and adapter state at scrape time."""

    def __init__(self, *, engine: Engine, wall_clock: Callable[[], float]) -> None:
        self._engine = engine
        self._wall_clock = wall_clock
        self._lora_labels: tuple[str, str] | None = None
        self._lora_since = 0.0

    def collect(self) -> Iterator[Metric]:
        e = self._engine
        model = e.config.model
        labels = ["model_name"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric([model], value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric([model], value)
            return c

        usage = e.pool.used / e.pool.num_blocks
        yield gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", len(e.running)
        )
        yield gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", len(e.waiting)
        )
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
        yield gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", usage)
        yield self._lora_info()
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the KV cache config.",
            labels=["block_size", "num_gpu_blocks"],
        )
        info.add_metric([str(e.config.block_size), str(e.config.kv_blocks)], 1.0)
        yield info
        c = e.counters
        yield counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of tokens.", c.prefix_queries
        )
        yield counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of tokens.", c.prefix_hits)
        yield counter("vllm:num_preemptions", "Cumulative number of preemptions.", c.preemptions)
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", c.prompt_tokens)
        yield counter("vllm:generation_tokens", "Number of generation tokens processed.", c.generated_tokens)
        yield counter("vllm:request_success", "Count of successfully processed requests.", c.finished)

    def _lora_info(self) -> GaugeMetricFamily:
        e = self._engine
        running = ",".join(sorted({s.adapter for s in e.running if s.adapter is not None}))
        waiting = ",".join(sorted({s.adapter for s in e.waiting if s.adapter is not None}))
        if (running, waiting) != self._lora_labels:
            self._lora_labels = (running, waiting)
            self._lora_since = self._wall_clock()
        g = GaugeMetricFamily(
            "vllm:lora_requests_info",
            "Running stats on LoRA requests.",
            labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
        )
        g.add_metric([str(e.config.max_loras), running, waiting], self._lora_since)
        return g


class ReplicaMetrics:
    """The Prometheus registry of one replica."""

    def __init__(self, *, engine: Engine, wall_clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_EngineCollector(engine=engine, wall_clock=wall_clock))
        model = engine.config.model

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, ["model_name"], registry=self.registry, buckets=buckets).labels(model)

        self._ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", _TTFT_BUCKETS
        )
        self._tpot = histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            _TPOT_BUCKETS,
        )
        self._e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            _E2E_BUCKETS,
        )

    def observe_first_token(self, seq: Sequence) -> None:
        assert seq.first_token_at is not None
        self._ttft.observe(seq.first_token_at - seq.arrival)

    def observe_finished(self, seq: Sequence) -> None:
        assert seq.finished_at is not None and seq.first_token_at is not None
        self._e2e.observe(seq.finished_at - seq.arrival)
        if seq.generated > 1:
            self._tpot.observe((seq.finished_at - seq.first_token_at) / (seq.generated - 1))
