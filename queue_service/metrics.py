"""Prometheus metrics: RPCs, job events, sweeps, and per-queue gauges read from the database.

Counters and histograms live in a registry owned by one server process. With several
processes (`serve --workers N`) prometheus-client's multiprocess mode writes them to
PROMETHEUS_MULTIPROC_DIR and the parent process serves the sum.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from queue_service.config import ConfigError
from queue_service.core.events import JobEvent

logger = logging.getLogger(__name__)

NAMESPACE = "queue_service"

# Long-polling leases may legitimately take tens of seconds, so the buckets reach that far.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOB_EVENT_HELP = {
    JobEvent.ENQUEUED: "Jobs created, by EnqueueJob(s) or by TrackStart of an unknown job.",
    JobEvent.STARTED: "Runs started, by LeaseJobs or TrackStart.",
    JobEvent.COMPLETED: "Jobs completed.",
    JobEvent.FAILED: "Runs that failed (reported or lease expired), whatever the decision.",
    JobEvent.RETRIED: "Failed runs scheduled for another attempt.",
    JobEvent.DEAD_LETTERED: "Jobs moved to the dead-letter queue.",
}


class ServiceMetrics:
    """The process's counters and histograms; also the core's ServiceEvents observer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        rpc_labels = ["grpc_service", "grpc_method", "grpc_type", "grpc_code"]
        self.rpc_handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by final status code.", rpc_labels, registry=registry
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to its final status, by status code.",
            rpc_labels,
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self.job_events = {
            event: Counter(f"{NAMESPACE}_jobs_{event.value}_total", JOB_EVENT_HELP[event], ["queue"], registry=registry)
            for event in JobEvent
        }
        self.sweep_seconds = Histogram(
            f"{NAMESPACE}_sweep_duration_seconds", "Duration of recovery sweeps.", ["status"],
            buckets=SWEEP_BUCKETS, registry=registry,
        )
        self.sweep_items = Counter(
            f"{NAMESPACE}_sweep_items_total", "Rows handled by recovery sweeps, per task.", ["task"], registry=registry
        )
        self.sweep_last_success = Gauge(
            f"{NAMESPACE}_sweep_last_success_timestamp_seconds",
            "Unix time at which the last successful sweep finished.",
            registry=registry,
            multiprocess_mode="max",
        )

    def observe_rpc(self, service: str, method: str, rpc_type: str, code: str, seconds: float) -> None:
        self.rpc_handled.labels(service, method, rpc_type, code).inc()
        self.rpc_seconds.labels(service, method, rpc_type, code).observe(seconds)

    # ServiceEvents

    def job_event(self, event: JobEvent, queue_name: str, count: int = 1) -> None:
        self.job_events[event].labels(queue_name).inc(count)

    def sweep_finished(self, *, duration_seconds: float, counts: Mapping[str, int], succeeded: bool) -> None:
        self.sweep_seconds.labels("succeeded" if succeeded else "failed").observe(duration_seconds)
        for task, count in counts.items():
            self.sweep_items.labels(task).inc(count)
        if succeeded:
            self.sweep_last_success.set(time.time())


# Known queue names, (queue, state, due, count) rows and {queue: pending} from the store.
QueueCounts = tuple[list[str], list[tuple[str, str, bool, int]], dict[str, int]]


class QueueGaugeCollector(Collector):
    """Per-queue gauges from one grouped query over unfinished jobs, cached for `ttl` seconds.

    A scrape never counts completed history, and a burst of scrapes (several Prometheus
    servers, a dashboard) costs one query per `ttl`.
    """

    def __init__(self, read_counts: Callable[[], QueueCounts], ttl: float = 5.0) -> None:
        self.read_counts = read_counts
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: QueueCounts | None = None
        self._read_at = float("-inf")
        self._failing = False

    def _counts(self) -> QueueCounts | None:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    self._cached = self.read_counts()
                    self._failing = False
                except Exception as error:  # noqa: BLE001 - a scrape must not fail because the database did
                    if not self._failing:
                        logger.warning("cannot read queue gauges: %s", type(error).__name__)
                    self._cached, self._failing = None, True
                self._read_at = time.monotonic()
            return self._cached

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = self._counts()
        up = GaugeMetricFamily(f"{NAMESPACE}_queue_gauges_up", "1 when the last read of the queue gauges succeeded.")
        up.add_metric([], 0 if counts is None else 1)
        yield up
        if counts is None:
            return
        names, rows, pending = counts
        jobs = GaugeMetricFamily(
            f"{NAMESPACE}_queue_jobs",
            "Unfinished jobs per queue: ready (waiting, due), delayed (waiting, scheduled later), "
            "active, failed (waiting for a retry).",
            labels=["queue", "state"],
        )
        values: dict[tuple[str, str], int] = {}
        queues = set(names) | set(pending)
        for queue, state, due, count in rows:
            queues.add(queue)
            gauge = {"waiting": "ready" if due else "delayed"}.get(state, state)
            values[(queue, gauge)] = values.get((queue, gauge), 0) + count
        for queue in sorted(queues):
            for gauge in ("ready", "delayed", "active", "failed"):
                jobs.add_metric([queue, gauge], values.get((queue, gauge), 0))
        yield jobs
        dlq = GaugeMetricFamily(
            f"{NAMESPACE}_dead_letter_pending", "Dead-letter entries waiting for triage, per queue.", labels=["queue"]
        )
        for queue in sorted(queues):
            dlq.add_metric([queue], pending.get(queue, 0))
        yield dlq


def database_counts(database, now: Callable[[], datetime]) -> Callable[[], QueueCounts]:
    """The QueueGaugeCollector's reader over a queue_service Database."""

    def read() -> QueueCounts:
        with database.transaction() as repo:
            return repo.queue_names(), repo.live_job_counts(now()), repo.pending_dead_letter_counts()

    return read


class MetricsEndpoint:
    """The /metrics HTTP listener on its own port."""

    def __init__(self, registry: Collector, host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise ConfigError(f"--metrics-port / QUEUE_METRICS_PORT: cannot listen on {host}:{port}: {error.strerror}") from None
        self.port = self._server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
