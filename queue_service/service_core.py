"""What one service process runs on, built from its config: the database, the managers over it,
recovery, metrics and tracing. A serving process puts gRPC in front of it (api/server.py); the
sweeper process of `serve --workers N` sweeps with it (sweeper.py)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from queue_service.clock import Clock, SystemClock
from queue_service.config import ConfigError, ServerConfig
from queue_service.core.audit import AuditLog
from queue_service.core.breakers import BreakerWebhook
from queue_service.core.cancellations import CancellationManager
from queue_service.core.dead_letters import DeadLetterManager
from queue_service.core.jobs import JobManager
from queue_service.core.notify import ReadyNotifier
from queue_service.core.paging import PageTokens
from queue_service.core.queues import QueueManager
from queue_service.core.schedules import ScheduleManager, ScheduleTick
from queue_service.core.sweep.runner import Recovery
from queue_service.metrics import ServiceMetrics
from queue_service.scheduler import RecoveryScheduler
from queue_service.store.database import Database
from queue_service.store.readiness import DatabaseReadiness, NotReady
from queue_service.store.wakeups import PostgresWakeups
from queue_service.tracing import TracingEvents, tracer_provider_from_environment


class ServiceCore:
    """The parts of one process. Checks (and, if asked, migrates) the database first: a ConfigError
    says why it cannot be used."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.database = Database(config.database_url)
        self.readiness = DatabaseReadiness(self.database, probe_timeout=config.health_check_interval)
        try:
            self.readiness.check_at_start(migrate_first=config.should_migrate)
        except NotReady as error:
            self.database.dispose()
            raise ConfigError(str(error)) from None
        self.notifier = ReadyNotifier()
        self.wakeups: PostgresWakeups | None = None
        self.tracer_provider = None
        self._owns_tracer_provider = config.tracer_provider is None
        try:
            self._make_parts(config, sleep)
            # Last, since it starts threads. Long-polls here wake for jobs made ready by the other
            # processes and replicas, and theirs for ours.
            if self.database.dialect == "postgresql":
                self.wakeups = PostgresWakeups(self.database, self.notifier.wake_here).start()
                self.notifier.relay = self.wakeups.send
        except BaseException:
            self.close()  # what was made so far: no engine or thread outlives a construction that failed
            raise

    def _make_parts(self, config: ServerConfig, sleep: Callable[[float], Any]) -> None:
        # Made here, not in the CLI: each process of `serve --workers N` needs its own export thread.
        self.tracer_provider = config.tracer_provider or tracer_provider_from_environment(os.environ)
        self.metrics_registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.metrics_registry)
        # No reply may outgrow what this server sends, whatever a caller says it accepts.
        limits = dataclasses.replace(config.lifecycle.limits, max_response_bytes=config.max_message_bytes)
        lifecycle = dataclasses.replace(config.lifecycle, limits=limits)
        self.jobs = JobManager(
            self.database,
            self.clock,
            lifecycle,
            self.notifier,
            events=TracingEvents(self.metrics, self.tracer_provider) if self.tracer_provider else self.metrics,
            page_tokens=PageTokens(config.resolved_page_token_key()),
        )
        self.queues = QueueManager(self.jobs)
        # `sleep` paces rate-limited bulk redrives; tests pass one that advances their fake clock.
        self.dead_letters = DeadLetterManager(self.jobs, sleep=sleep)
        self.cancellations = CancellationManager(self.jobs, sleep=sleep)
        self.audit_log = AuditLog(self.database, self.clock, self.jobs.page_tokens)
        self.recovery = Recovery(self.jobs, config.recovery)
        self._wire_breakers(config)
        self.schedules = ScheduleManager(self.jobs)
        # With no interval this process never sweeps on a timer, so it does not stand for leader either.
        self.recovery_scheduler = (
            RecoveryScheduler(self.recovery, ScheduleTick(self.jobs, self.schedules.settings))
            if config.runs_scheduler and config.recovery.interval > timedelta(0)
            else None
        )

    def _wire_breakers(self, config: ServerConfig) -> None:
        """Circuit breaker transitions, once committed, to metrics and the alert webhook (the DLQ
        alerts' webhook); Recovery has already given them the email outbox."""
        breakers = self.jobs.breakers
        breakers.listeners.append(self.metrics.breaker_changed)
        if config.recovery.dlq_alert_webhook_url:
            breakers.listeners.append(
                BreakerWebhook(
                    config.recovery.dlq_alert_webhook_url,
                    timeout=config.recovery.webhook_timeout.total_seconds(),
                    node_id=self.recovery.node_id,
                )
            )

    def scheduler_node_id(self) -> str:
        """The node id of the process that runs this replica's scheduler; empty if none does."""
        if self.config.scheduler_node_id is not None:
            return self.config.scheduler_node_id
        return self.recovery.node_id if self.recovery_scheduler else ""

    def stop_sweeping(self) -> None:
        """Stop a running sweep at its next batch, and the scheduler, resigning its leadership."""
        self.recovery.request_stop()
        if self.recovery_scheduler:
            self.recovery_scheduler.stop()

    def close(self) -> None:
        self.notifier.close()
        if self.wakeups is not None:
            self.wakeups.stop()
        if self.tracer_provider is not None and self._owns_tracer_provider:
            # Sends the spans still batched.
            self.tracer_provider.shutdown()
        self.database.dispose()
