"""Prometheus metrics of the ext_proc (GenAI semantic conventions) and the HTTP endpoint that serves them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

OUTCOMES: Final = ("ok", "bad_request", "model_not_found", "upstream_error", "unavailable", "cancelled")
"""Values of the ``outcome`` label of ``aigw_extproc_requests_total``."""

_TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
_TTFT_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
_TPOT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

_COMMON: Final = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
MAX_MODELS: Final = 1000
"""Distinct label sets kept per process before new request models are labelled ``_other``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestMetrics:
    """The histogram children of one (operation, provider, request model): observe without label lookups."""

    tokens: dict[str, Histogram]
    duration_ok: Histogram
    duration: Callable[[str], Histogram]
    """By ``error_type`` (the outcome) for requests that did not end ``ok``."""
    ttft: Histogram
    tpot: Histogram


class Metrics:
    """Every metric of one ext_proc process, in its own registry (so tests can make fresh ones)."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type.",
            [*_COMMON, "gen_ai_token_type"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            "gen_ai_server_request_duration",
            "Seconds from request headers to the end of the response.",
            [*_COMMON, "error_type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token",
            "Seconds from request headers to the first streamed chunk.",
            list(_COMMON),
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "gen_ai_server_time_per_output_token",
            "Seconds per output token after the first, streaming only.",
            list(_COMMON),
            buckets=_TPOT_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "aigw_extproc_requests",
            "Requests seen by the ext_proc, by outcome.",
            ["outcome"],
            registry=r,
        )
        for o in OUTCOMES:
            self.requests.labels(o)
        self.config_info = Gauge(
            "aigw_extproc_config_info",
            "1 for the filter config being served.",
            ["version", "uuid", "hash"],
            registry=r,
        )
        self.config_reloads = Counter(
            "aigw_extproc_config_reloads",
            "Filter config load attempts, by result.",
            ["result"],
            registry=r,
        )
        for res in ("ok", "error"):
            self.config_reloads.labels(res)
        self.shed = Counter(
            "aigw_extproc_shed_requests",
            "Requests refused with 429 because their InferencePool was saturated, by pool, model and "
            "criticality.",
            ["pool", "model", "criticality"],
            registry=r,
        )
        self.epp_failures = Counter(
            "aigw_extproc_endpoint_picker_failures",
            "Requests whose pool's external endpoint picker gave no usable answer (down, timed out, no valid "
            "endpoint), by pool and failure mode (FailOpen: our picker chose; FailClose: 503).",
            ["pool", "failure_mode"],
            registry=r,
        )
        self.fallbacks = Counter(
            "aigw_extproc_pool_fallbacks",
            "Requests sent to a pool's fallback because the pool could not serve them, by route, pool and "
            "reason (no_endpoint: the pool had no endpoint; saturated: it would have shed the request).",
            ["route", "pool", "reason"],
            registry=r,
        )
        self.cost_failures = Counter(
            "aigw_extproc_cost_failures",
            "CEL request costs left out of the metadata because the program failed or its result was "
            "negative, not an integer or too large, by route, metadata key and reason.",
            ["route", "metadata_key", "reason"],
            registry=r,
        )
        self._children: dict[tuple[str, str, str], RequestMetrics] = {}
        self.config_last_error = Gauge(
            "aigw_extproc_config_last_load_failed",
            "1 when the last attempt to load the config failed.",
            registry=r,
        )

    def for_request(self, *, operation: str, provider: str, model: str) -> RequestMetrics:
        """The metric children for one label set, cached. Beyond ``MAX_MODELS`` distinct request models
        (the model is client-chosen when a rule matches any model) new names are labelled ``_other``."""
        key = (operation, provider, model)
        children = self._children.get(key)
        if children is None:
            if len(self._children) >= MAX_MODELS:
                return (
                    self.for_request(operation=operation, provider=provider, model="_other")
                    if (model != "_other")
                    else self._build(key)
                )
            children = self._children[key] = self._build(key)
        return children

    def _build(self, key: tuple[str, str, str]) -> RequestMetrics:
        return RequestMetrics(
            tokens={t: self.token_usage.labels(*key, t) for t in ("input", "output", "total")},
            duration_ok=self.request_duration.labels(*key, ""),
            duration=lambda error_type: self.request_duration.labels(*key, error_type),
            ttft=self.time_to_first_token.labels(*key),
            tpot=self.time_per_output_token.labels(*key),
        )

    def set_config(self, *, version: str, uuid: str, content_hash: str) -> None:
        """Record the config now serving (only that one carries value 1)."""
        self.config_info.clear()
        self.config_info.labels(version, uuid, content_hash).set(1)


def metrics_app(*, metrics: Metrics, health: Callable[[], tuple[bool, str]] | None = None) -> web.Application:
    """``/metrics`` (Prometheus text) and ``/health``: ``health()`` gives (healthy, text); 200 with the text
    when healthy, else 503. Without ``health``, 200 ``ok`` while the process serves."""

    async def serve_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})

    async def serve_health(_: web.Request) -> web.Response:
        healthy, text = health() if health is not None else (True, "ok")
        return web.Response(text=text, status=200 if healthy else 503)

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/health", serve_health)
    return app
