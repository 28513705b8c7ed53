"""Prometheus metrics of the extension server, on a registry the caller owns (the controller manager's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

RESULT_OK: Final = "ok"
"""The hook answered; the xDS may or may not have changed."""
RESULT_PASSTHROUGH: Final = "passthrough"
"""The hook met a shape it does not handle and returned (that part of) its input unchanged, with a warning."""
RESULT_ERROR: Final = "error"
"""The hook answered with a gRPC error: Envoy Gateway skips the xDS update unless failOpen is set."""
RESULTS: Final = (RESULT_OK, RESULT_PASSTHROUGH, RESULT_ERROR)

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ExtensionServerMetrics:
    """``aigw_extension_server_hook_calls_total{hook, result}`` and
    ``aigw_extension_server_hook_duration_seconds{hook}`` (time spent in our handler, not on the wire)."""

    def __init__(self, *, registry: CollectorRegistry, hooks: Iterable[str]) -> None:
        self.calls = Counter(
            "aigw_extension_server_hook_calls",
            "Envoy Gateway extension hook calls, by hook (RPC name) and result (ok, passthrough, error).",
            ["hook", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "aigw_extension_server_hook_duration_seconds",
            "Time spent handling one Envoy Gateway extension hook call, by hook (RPC name).",
            ["hook"],
            registry=registry,
            buckets=_BUCKETS,
        )
        # Export every series from the start, so that rate() and alerts see zeros rather than nothing.
        for hook in hooks:
            self.duration.labels(hook=hook)
            for result in RESULTS:
                self.calls.labels(hook=hook, result=result)

    def observe(self, *, hook: str, result: str, seconds: float) -> None:
        """Count one call and record its duration."""
        self.calls.labels(hook=hook, result=result).inc()
        self.duration.labels(hook=hook).observe(seconds)
