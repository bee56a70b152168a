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
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from queue_service.config import ConfigError
from queue_service.core.breaker import BreakerChange
from queue_service.core.events import JobEvent
from queue_service.core.queues import QueueManager

logger = logging.getLogger(__name__)
T = TypeVar("T")

NAMESPACE = "queue_service"

# Long-polling leases may legitimately take tens of seconds, so the buckets reach that far.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Job runs range from milliseconds (a webhook) to an hour (a report or an export).
PROCESSING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Series carry a queue label for at most this many queues (gauges: the busiest; counters: the first
# this process saw); the others add up under OTHER_QUEUES, so a scrape stays small however many queues there are.
METRICS_QUEUE_LABELS = 100
OTHER_QUEUES = "__other__"

JOB_EVENT_HELP = {
    JobEvent.ENQUEUED: "Jobs created, by EnqueueJob(s) or by TrackStart of an unknown job.",
    JobEvent.STARTED: "Runs started, by LeaseJobs or TrackStart.",
    JobEvent.COMPLETED: "Jobs completed.",
    JobEvent.FAILED: "Runs that failed (reported or lease expired), whatever the decision.",
    JobEvent.RETRIED: "Failed runs scheduled for another attempt.",
    JobEvent.DEAD_LETTERED: "Jobs moved to the dead-letter queue.",
    JobEvent.CANCELLED: "Jobs cancelled, at once or when their run stopped.",
}


class ServiceMetrics:
    """The process's counters and histograms; also the core's ServiceEvents observer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        rpc_labels = ["grpc_service", "grpc_method", "grpc_type", "grpc_code"]
        self.rpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by final status code.",
            rpc_labels,
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server spent handling an RPC, by final status code.",
            rpc_labels,
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        # Each RPC and job event finds its series here: labels() validates and locks on every call.
        # Dicts, read and filled under the GIL: a race only looks a series up twice.
        self._rpc_series: dict[tuple[str, str, str, str], tuple] = {}
        self._event_series: dict[tuple[JobEvent, str], object] = {}
        self._labelled_queues: set[str] = set()
        self._labels_lock = threading.Lock()
        self.job_events = {
            event: Counter(f"{NAMESPACE}_jobs_{event.value}_total", JOB_EVENT_HELP[event], ["queue"], registry=registry)
            for event in JobEvent
        }
        self.processing_seconds = Histogram(
            f"{NAMESPACE}_job_processing_seconds",
            "Processing time of completed runs, as their workers reported it, per queue.",
            ["queue"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.sweep_seconds = Histogram(
            f"{NAMESPACE}_sweep_duration_seconds",
            "Duration of recovery sweeps.",
            ["status"],
            buckets=SWEEP_BUCKETS,
            registry=registry,
        )
        self.sweep_items = Counter(
            f"{NAMESPACE}_sweep_items_total", "Rows handled by recovery sweeps, per task.", ["task"], registry=registry
        )
        self.breaker_transitions = Counter(
            f"{NAMESPACE}_circuit_breaker_transitions_total",
            "Circuit breaker transitions this process made (trip, probe, close, reopen, reset), per queue.",
            ["queue", "transition", "to_state"],
            registry=registry,
        )

    def observe_rpc(self, service: str, method: str, rpc_type: str, code: str, seconds: float) -> None:
        key = (service, method, rpc_type, code)
        series = self._rpc_series.get(key)
        if series is None:
            series = self._rpc_series[key] = (self.rpc_handled.labels(*key), self.rpc_seconds.labels(*key))
        series[0].inc()
        series[1].observe(seconds)

    # ServiceEvents

    def job_event(self, event: JobEvent, queue_name: str, count: int = 1) -> None:
        key = (event, queue_name)
        series = self._event_series.get(key)
        if series is None:
            label = self._queue_label(queue_name)
            series = self.job_events[event].labels(label)
            if label == queue_name:
                # Only labelled queues are kept: there are at most METRICS_QUEUE_LABELS of them.
                self._event_series[key] = series
        series.inc(count)

    def lease_expiry_decided(self, job, decision, dead_letter_id: str) -> None:
        pass  # counted as job events already

    def job_processed(self, queue_name: str, seconds: float) -> None:
        self.processing_seconds.labels(self._queue_label(queue_name)).observe(seconds)

    def breaker_changed(self, change: BreakerChange) -> None:
        """A circuit breaker listener (core/breakers.py)."""
        label = self._queue_label(change.queue_name)
        self.breaker_transitions.labels(label, change.transition.value, change.to_state.value).inc()

    def _queue_label(self, queue_name: str) -> str:
        with self._labels_lock:
            if queue_name in self._labelled_queues:
                return queue_name
            if len(self._labelled_queues) < METRICS_QUEUE_LABELS:
                self._labelled_queues.add(queue_name)
                return queue_name
        return OTHER_QUEUES

    def sweep_finished(self, *, duration_seconds: float, counts: Mapping[str, int], succeeded: bool) -> None:
        self.sweep_seconds.labels("succeeded" if succeeded else "failed").observe(duration_seconds)
        for task, count in counts.items():
            self.sweep_items.labels(task).inc(count)


# {queue: {gauge: value}} with gauges ready, delayed, active, failed, dead_letter_pending.
QueueGauges = dict[str, dict[str, int]]
JOB_GAUGES = ("ready", "delayed", "active", "failed")


class CachedRead(Generic[T]):
    """A database read for the scrapes, done at most once per `ttl` seconds, so that a burst of
    scrapes (several Prometheus servers, a dashboard) costs one read. None while it fails."""

    def __init__(self, read: Callable[[], T], ttl: float, what: str) -> None:
        self.read = read
        self.ttl = ttl
        self.what = what
        self._lock = threading.Lock()
        self._cached: T | None = None
        self._read_at = float("-inf")
        self._failing = False

    def get(self) -> T | None:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    self._cached = self.read()
                    self._failing = False
                except Exception as error:  # noqa: BLE001 - a scrape must not fail because the database did
                    if not self._failing:
                        logger.warning("cannot read %s: %s", self.what, type(error).__name__)
                    self._cached, self._failing = None, True
                self._read_at = time.monotonic()
            return self._cached


class QueueGaugeCollector(Collector):
    """Per-queue gauges from the queue statistics, cached for `ttl` seconds.

    The statistics come from trigger-kept counters, not from counting jobs.
    """

    def __init__(self, read_gauges: Callable[[], QueueGauges], ttl: float = 5.0) -> None:
        self._read = CachedRead(read_gauges, ttl, "queue gauges")

    @property
    def ttl(self) -> float:
        return self._read.ttl

    @ttl.setter
    def ttl(self, value: float) -> None:
        self._read.ttl = value

    def _gauges(self) -> QueueGauges | None:
        return self._read.get()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauges = self._gauges()
        up = GaugeMetricFamily(f"{NAMESPACE}_queue_gauges_up", "1 when the last read of the queue gauges succeeded.")
        up.add_metric([], 0 if gauges is None else 1)
        yield up
        if gauges is None:
            return
        jobs = GaugeMetricFamily(
            f"{NAMESPACE}_queue_jobs",
            "Unfinished jobs per queue: ready (waiting, due), delayed (waiting, scheduled later), "
            "active, failed (waiting for a retry).",
            labels=["queue", "state"],
        )
        dlq = GaugeMetricFamily(
            f"{NAMESPACE}_dead_letter_pending", "Dead-letter entries waiting for triage, per queue.", labels=["queue"]
        )
        for queue in sorted(gauges):
            for gauge in JOB_GAUGES:
                jobs.add_metric([queue, gauge], gauges[queue].get(gauge, 0))
            dlq.add_metric([queue], gauges[queue].get("dead_letter_pending", 0))
        yield jobs
        yield dlq


class OldestWaitingCollector(Collector):
    """Per queue: seconds the job ready to run the longest has been waiting for a worker (0 samples
    for queues with nothing ready). The METRICS_QUEUE_LABELS longest waits are labelled by queue;
    the longest of the rest stands under OTHER_QUEUES."""

    def __init__(self, read_oldest: Callable[[], Mapping[str, timedelta]], ttl: float = 5.0) -> None:
        self._read = CachedRead(read_oldest, ttl, "the oldest waiting jobs")

    def collect(self) -> Iterable[GaugeMetricFamily]:
        oldest = self._read.get()
        family = GaugeMetricFamily(
            f"{NAMESPACE}_queue_oldest_waiting_age_seconds",
            "Age of the oldest job ready to run, per queue: how long it has waited for a worker.",
            labels=["queue"],
        )
        if oldest:
            ranked = sorted(oldest.items(), key=lambda item: (-item[1], item[0]))
            for queue, age in sorted(ranked[:METRICS_QUEUE_LABELS]):
                family.add_metric([queue], age.total_seconds())
            if len(ranked) > METRICS_QUEUE_LABELS:
                family.add_metric([OTHER_QUEUES], ranked[METRICS_QUEUE_LABELS][1].total_seconds())
        yield family


class LastSweepCollector(Collector):
    """When the cluster's last successful sweep finished, whichever replica ran it, read from the
    recorded runs: every replica exports the same value, followers included. No sample before the
    first successful sweep, or while the database cannot be read."""

    def __init__(self, read_last_success: Callable[[], datetime | None], ttl: float = 5.0) -> None:
        self._read = CachedRead(read_last_success, ttl, "the last successful sweep")

    def collect(self) -> Iterable[GaugeMetricFamily]:
        finished_at = self._read.get()
        family = GaugeMetricFamily(
            f"{NAMESPACE}_sweep_last_success_timestamp_seconds",
            "Unix time at which the last successful recovery sweep of any replica finished.",
        )
        if finished_at is not None:
            family.add_metric([], finished_at.timestamp())
        yield family


def statistics_gauges(queues: QueueManager) -> Callable[[], QueueGauges]:
    """The QueueGaugeCollector's reader over the admin statistics (the same numbers as GetStatistics):
    the METRICS_QUEUE_LABELS busiest queues by name, and the rest summed under OTHER_QUEUES."""

    def gauges(item) -> dict[str, int]:
        return {
            "ready": item.waiting,
            "delayed": item.delayed,
            "active": item.active,
            "failed": item.failed,
            "dead_letter_pending": item.dead_letters_pending,
        }

    def read() -> QueueGauges:
        statistics = queues.statistics(max_queues=METRICS_QUEUE_LABELS)
        found = {item.queue_name: gauges(item) for item in statistics.queues}
        if statistics.omitted:
            listed = [gauges(item) for item in statistics.queues]
            found[OTHER_QUEUES] = {
                name: total - sum(item[name] for item in listed) for name, total in gauges(statistics.totals).items()
            }
        return found

    return read


class MetricsEndpoint:
    """The /metrics HTTP listener on its own port."""

    def __init__(self, registry: Collector, host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise ConfigError(
                f"--metrics-port / QUEUE_METRICS_PORT: cannot listen on {host}:{port}: {error.strerror}"
            ) from None
        self.port = self._server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
