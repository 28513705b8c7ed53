"""The controller benchmark's readings: API writes from the controller's own metrics page, CPU from /proc."""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, generate_latest

from bench.controller.run import api_writes, cpu_seconds
from controller.gateway.reconciler import ControllerMetrics


def test_api_writes_are_read_by_kind_and_verb_from_the_controllers_metrics() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.writes.labels("AIGatewayRoute", "status").inc(3)
    metrics.writes.labels("ConfigMap", "apply").inc(2)
    page = generate_latest(registry).decode()
    assert sorted(api_writes(page)) == [("AIGatewayRoute", "status", 3.0), ("ConfigMap", "apply", 2.0)]


def test_cpu_seconds_follow_this_process() -> None:
    before = cpu_seconds(os.getpid())
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    spent = cpu_seconds(os.getpid()) - before
    assert 0.2 <= spent <= 5.0, spent  # clock ticks of 10 ms; other threads of this process may add some
