"""Prometheus metrics under controller-runtime's exact names, on a registry owned by one ``Manager``.

Each ``Metrics`` has its own ``CollectorRegistry`` so that several managers (in tests) never collide. The
``*_created`` series are disabled process-wide: controller-runtime has none, and they double the scrape size.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0,
    40.0, 50.0, 60.0,
)  # fmt: skip
WORKQUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))  # ExponentialBuckets(1e-8, 10, 12)

RESULTS = ("success", "error", "requeue", "requeue_after")

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every collector of one manager. ``registry`` is what ``/metrics`` serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        c = ["controller"]
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            c,
            registry=r,
        )
        self.terminal_errors = Counter(
            "controller_runtime_terminal_reconcile_errors_total",
            "Total number of terminal reconciliation errors per controller",
            c,
            registry=r,
        )
        self.reconcile_panics = Counter(
            "controller_runtime_reconcile_panics_total",
            "Total number of reconciliation panics per controller",
            c,
            registry=r,
        )
        self.reconcile_timeouts = Counter(
            "controller_runtime_reconcile_timeouts_total",
            "Total number of reconciliation timeouts per controller",
            c,
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            c,
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.max_concurrent = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            c,
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            c,
            registry=r,
        )
        q = ["name", "controller"]
        self.wq_depth = Gauge("workqueue_depth", "Current depth of workqueue", [*q, "priority"], registry=r)
        self.wq_adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", q, registry=r
        )
        self.wq_queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            q,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.wq_work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            q,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.wq_unfinished = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration",
            q,
            registry=r,
        )
        self.wq_longest = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running",
            q,
            registry=r,
        )
        self.wq_retries = Counter(
            "workqueue_retries_total", "Total number of retries handled by workqueue", q, registry=r
        )
        self.leader_status = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
            "1 indicates master",
            ["name"],
            registry=r,
        )
        self.leader_slowpath = Counter(
            "leader_election_slowpath_total",
            "Total number of slow path exercised in renewing leader leases",
            ["name"],
            registry=r,
        )
        self.rest_requests = Counter(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "method", "host"],
            registry=r,
        )
        self.rest_latency = Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            ["verb", "host"],
            buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
            registry=r,
        )

    def init_controller(self, controller: str, *, max_concurrent_reconciles: int) -> None:
        """Create every series of ``controller`` at 0 (controller-runtime's ``initMetrics``)."""
        for result in RESULTS:
            self.reconcile_total.labels(controller, result)
        for metric in (
            self.reconcile_errors,
            self.terminal_errors,
            self.reconcile_panics,
            self.reconcile_timeouts,
        ):
            metric.labels(controller)
        self.reconcile_time.labels(controller)
        self.active_workers.labels(controller).set(0)
        self.max_concurrent.labels(controller).set(max_concurrent_reconciles)

    def workqueue(
        self, name: str, *, processing_ages: Callable[[], list[float]] | None = None
    ) -> WorkqueueMetrics:
        """A ``QueueMetrics`` for the queue of controller ``name``."""
        return WorkqueueMetrics(self, name, processing_ages=processing_ages)


class WorkqueueMetrics:
    """Feeds one queue's measurements into ``Metrics`` (labels ``name`` = ``controller``)."""

    def __init__(
        self, metrics: Metrics, name: str, *, processing_ages: Callable[[], list[float]] | None = None
    ) -> None:
        self._depth = metrics.wq_depth.labels(name, name, "")
        self._adds = metrics.wq_adds.labels(name, name)
        self._queue_duration = metrics.wq_queue_duration.labels(name, name)
        self._work_duration = metrics.wq_work_duration.labels(name, name)
        self._retries = metrics.wq_retries.labels(name, name)
        self._depth.set(0)
        if processing_ages is not None:
            self.track_unfinished(metrics, name, processing_ages)

    @staticmethod
    def track_unfinished(metrics: Metrics, name: str, processing_ages: Callable[[], list[float]]) -> None:
        """Compute the unfinished-work gauges at scrape time from the queue's in-flight ages."""
        metrics.wq_unfinished.labels(name, name).set_function(lambda: sum(processing_ages()))
        metrics.wq_longest.labels(name, name).set_function(lambda: max(processing_ages(), default=0.0))

    def on_add(self) -> None:
        self._adds.inc()

    def on_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def on_get(self, queued_seconds: float) -> None:
        self._queue_duration.observe(queued_seconds)

    def on_done(self, work_seconds: float) -> None:
        self._work_duration.observe(work_seconds)

    def on_retry(self) -> None:
        self._retries.inc()
