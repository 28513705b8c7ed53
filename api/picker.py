"""Endpoint-picker settings of one InferencePool: which picker, how its signals are gathered, and its
filters, scorer weights and shedding thresholds.

The controller writes them into the filter config per pool (``pools[].picker``); every field has a default
here, so an empty section means the load-aware picker as benchmarked in ``bench/routing``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Self

import pydantic
import yaml
from pydantic import Field, model_validator

from api.base import KubeModel
from api.errors import field_errors

__all__ = [
    "PICKER_ANNOTATION",
    "EndpointPickerConfig",
    "MetricNames",
    "PickerType",
    "PickerWeights",
    "PrefixSettings",
    "SaturationSettings",
    "ScrapeSettings",
    "parse_picker_annotation",
]

PICKER_ANNOTATION: Final = "aigateway.envoyproxy.io/endpoint-picker"
"""InferencePool annotation holding the pool's ``EndpointPickerConfig`` as YAML or JSON (camelCase fields)."""


class PickerType(StrEnum):
    """``Random``: uniform draw, no signals. ``LoadAware``: scraped + passive signals, affinity, shedding."""

    RANDOM = "Random"
    LOAD_AWARE = "LoadAware"


class MetricNames(KubeModel):
    """Prometheus series the scraper reads from each endpoint's metrics page (vLLM names by default)."""

    waiting: Annotated[str, Field(min_length=1)] = "vllm:num_requests_waiting"
    """Gauge: requests queued, not yet scheduled (summed over series)."""
    running: Annotated[str, Field(min_length=1)] = "vllm:num_requests_running"
    """Gauge: requests in the running batch (summed over series)."""
    kv_cache: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]
    )
    """Gauge 0-1: KV-cache use; the first name present wins (older vLLM uses the second)."""
    lora_info: str = "vllm:lora_requests_info"
    """Info gauge with labels ``running_lora_adapters``, ``waiting_lora_adapters`` and ``max_lora``; empty
    turns LoRA affinity off."""


class ScrapeSettings(KubeModel):
    """How each endpoint's metrics are polled, off the request path."""

    interval_ms: Annotated[int, Field(ge=5, le=60_000)] = 50
    timeout_ms: Annotated[int, Field(ge=5, le=60_000)] = 1000
    """A scrape not answered within this is abandoned and its connection closed."""
    staleness_ms: Annotated[int, Field(ge=10, le=600_000)] = 500
    """Scraped values older than this are not trusted; the picker then uses the passive signals alone."""
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The metrics port; unset: the endpoint's own port."""
    metric_names: MetricNames = Field(default_factory=MetricNames)


class PickerWeights(KubeModel):
    """Weights of the scorers (each scores an endpoint 0-1); 0 turns a scorer off."""

    load: Annotated[float, Field(ge=0)] = 4.0
    """Fused load: scraped waiting + running, corrected by this ext_proc's in-flight change since the
    scrape."""
    kv_cache: Annotated[float, Field(ge=0)] = 1.0
    """1 - KV-cache use (fresh scrapes only)."""
    prefix: Annotated[float, Field(ge=0)] = 4.0
    """Share of the prompt's leading blocks this endpoint recently served."""
    lora: Annotated[float, Field(ge=0)] = 4.0
    """1 when the target adapter is loaded, 0.8 when a slot is free, 0.6 when it is waiting, else 0."""
    latency: Annotated[float, Field(ge=0)] = 0.0
    """Fastest moving-average response time / this endpoint's."""
    health: Annotated[float, Field(ge=0)] = 2.0
    """1 / (1 + recent failures, decaying): fast failures never make an endpoint look fast."""


class SaturationSettings(KubeModel):
    """When an endpoint counts as saturated, and which criticalities are shed when all of them are."""

    queue_depth: Annotated[float, Field(gt=0)] = 5
    """Saturated at this many (estimated) waiting requests..."""
    kv_cache: Annotated[float, Field(gt=0, le=1)] = 0.8
    """...or at this KV-cache use."""
    standard_factor: Annotated[float, Field(ge=1)] = 2.0
    """Standard requests are shed only when every endpoint is past this multiple of both thresholds."""
    retry_after_seconds: Annotated[int, Field(ge=0, le=3600)] = 1
    """``retry-after`` of a shed request's 429."""


class PrefixSettings(KubeModel):
    """The approximate prefix-cache index: prompt blocks hashed, endpoint <- block, LRU-bounded."""

    block_chars: Annotated[int, Field(ge=8, le=65536)] = 128
    """Characters per block (about 4 per token: 128 = 32 tokens)."""
    max_blocks: Annotated[int, Field(ge=1, le=4096)] = 64
    """Leading blocks hashed per request (64 x 128 = 8 KiB, about 2k tokens); the rest of a long prompt is
    ignored, which bounds the per-request cost."""
    capacity: Annotated[int, Field(ge=1, le=10_000_000)] = 200_000
    """Block hashes kept for the pool (least recently used dropped first)."""


class EndpointPickerConfig(KubeModel):
    """The endpoint picker of one pool."""

    type: PickerType = PickerType.LOAD_AWARE
    load_scale: Annotated[float, Field(gt=0)] = 4.0
    """Load difference that costs the whole load weight (in queued requests; a running one counts
    ``runningWeight``); a wider spread among endpoints widens it."""
    running_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    """What a running request counts in the load scorer, relative to a queued one (1). A queued request
    delays a newcomer by a whole turn of a batch slot; a running one only lengthens each step a little and
    frees its slot later. Below 1, affinity (a cached prefix, a loaded adapter) outweighs a busier batch
    sooner than a queue."""
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)
    weights: PickerWeights = Field(default_factory=PickerWeights)
    saturation: SaturationSettings = Field(default_factory=SaturationSettings)
    prefix: PrefixSettings = Field(default_factory=PrefixSettings)

    @model_validator(mode="after")
    def _timeout_fits(self) -> Self:
        if self.scrape.staleness_ms < self.scrape.interval_ms:
            raise ValueError("scrape.stalenessMs must be at least scrape.intervalMs")
        return self


def parse_picker_annotation(value: str) -> EndpointPickerConfig:
    """The picker settings in an InferencePool's ``PICKER_ANNOTATION``. Raises ValueError naming the field
    and the problem when the text is not YAML/JSON of a valid ``EndpointPickerConfig``."""
    try:
        doc = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML or JSON: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"expected a mapping of picker settings, got {type(doc).__name__}")
    try:
        return EndpointPickerConfig.model_validate(doc)
    except pydantic.ValidationError as e:
        raise ValueError("; ".join(str(fe) for fe in field_errors(e))) from None
