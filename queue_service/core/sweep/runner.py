"""Runs one sweep: the registered tasks in order, the single-sweeper lock, and the run record.

At most one sweep runs at a time across every replica sharing the database: a sweep first takes
the "recovery-sweep" lease (and, within a process, a lock), keeps it alive between batches, and
gives it up at the end. A second sweep asked for meanwhile gets Aborted, naming the running one.
Each task is isolated: one that raises is logged and recorded, and the sweep goes on with the
next, except when the database is unreachable, the sweep lost its lock or the node is stopping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from queue_service.alerts.outbox import EmailOutbox
from queue_service.core.errors import Aborted
from queue_service.core.jobs import JobManager
from queue_service.core.leadership import Lease, default_node_id
from queue_service.core.sweep.registry import build_tasks
from queue_service.core.sweep.runs import RecoveryRuns
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.task import PostJson, RecoveryCounts, SweepContext, SweepTask
from queue_service.core.sweep.tasks.dlq_alerts import post_json
from queue_service.domain import RecoveryRunRecord
from queue_service.store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

SWEEP_LOCK = "recovery-sweep"


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    CLI = "cli"


class SweepInterrupted(Exception):
    """The sweep must stop at once: its lock was taken over, or the node is shutting down."""


class Recovery:
    """Runs sweeps for one node. Thread-safe; `run_once` is what schedulers, the RPC and the CLI call."""

    def __init__(
        self,
        jobs: JobManager,
        settings: RecoverySettings | None = None,
        *,
        tasks: Sequence[SweepTask] | None = None,
        post: PostJson = post_json,
    ) -> None:
        self.jobs = jobs
        self.settings = settings or RecoverySettings()
        self.node_id = self.settings.node_id or default_node_id()
        self.database = jobs.database
        self.clock = jobs.clock
        self.runs = RecoveryRuns(self.database, self.clock, self.node_id, jobs.page_tokens)
        self.sweep_lock = Lease(
            self.database,
            self.clock,
            SWEEP_LOCK,
            self.node_id,
            self.settings.sweep_lock_ttl or self.settings.leader_lease_term,
            log_level=logging.DEBUG,
        )
        context = SweepContext(jobs, self.settings, self.node_id, post)
        self.tasks = list(tasks) if tasks is not None else build_tasks(context)
        # The sweep re-opens circuit breakers whose probe's lease expired: their alert emails go out too.
        if jobs.breakers.email_outbox is None:
            jobs.breakers.email_outbox = EmailOutbox(self.settings.alert_email)
        self._sweeping = threading.Lock()
        self._current: RecoveryRunRecord | None = None
        self._stopping = threading.Event()

    def run_once(
        self,
        trigger: Trigger | str = Trigger.MANUAL,
        *,
        actor: str | None = None,
        caller_waiting: Callable[[], bool] | None = None,
    ) -> RecoveryRunRecord:
        """Sweep now and return the finished run (SUCCEEDED, or FAILED with its error).

        `actor` (an admin asking through the API) is recorded in the audit trail with the run.
        Raises Aborted if a sweep is already running here or on another node. The sweep runs in
        the calling thread and ends whether or not its caller still waits (`caller_waiting`,
        heeded where another process sweeps: SweeperClient)."""
        if not self._sweeping.acquire(blocking=False):
            current = self._current
            since = f" (run {current.id}, started {current.started_at.isoformat()})" if current else ""
            raise Aborted(f"a recovery sweep is already running on this node{since}", reason="RECOVERY_RUNNING")
        try:
            if not self.sweep_lock.elect():
                holder = self.sweep_lock.current()
                where = f"node {holder.holder!r} since {holder.elected_at.isoformat()}" if holder else "another node"
                raise Aborted(f"a recovery sweep is already running on {where}", reason="RECOVERY_RUNNING")
            try:
                return self._sweep(Trigger(trigger), actor)
            finally:
                self._release_sweep_lock()
        finally:
            self._current = None
            self._sweeping.release()

    def _release_sweep_lock(self) -> None:
        try:
            self.sweep_lock.resign()
        except StoreUnavailable as error:
            logger.warning("could not release the sweep lock (it lapses by itself): %s", error)

    def request_stop(self) -> None:
        """Make a running sweep (and any later one) stop after its current batch; for shutdown."""
        self._stopping.set()

    def _checkpoint(self) -> None:
        if self._stopping.is_set():
            raise SweepInterrupted("stopped: the node is shutting down")
        if not self.sweep_lock.renew_if_due():
            raise SweepInterrupted("stopped: another node took the sweep lock over")

    def _sweep(self, trigger: Trigger, actor: str | None) -> RecoveryRunRecord:
        run = self.runs.start(trigger.value, actor=actor)
        self._current = run
        started = time.monotonic()
        counts = RecoveryCounts()
        errors: list[str] = []
        durations: dict[str, float] = {}
        for task in self.tasks:
            task_started = time.monotonic()
            try:
                task.add_counts(task.run_once(self._checkpoint), counts)
            except (SweepInterrupted, StoreUnavailable) as error:
                errors.append(f"{task.name}: {error}")
                logger.error("recovery run %d stopped in %s: %s", run.id, task.name, error)
                break
            except Exception as error:  # noqa: BLE001 - one broken task must not stop the others
                errors.append(f"{task.name}: {type(error).__name__}: {error}")
                logger.exception("recovery run %d: task %s failed", run.id, task.name)
            finally:
                durations[task.name] = time.monotonic() - task_started
        finished = self.runs.finish(run, counts=counts.to_json(), error="; ".join(errors) or None)
        elapsed = time.monotonic() - started
        self.jobs.events.sweep_finished(duration_seconds=elapsed, counts=counts.to_json(), succeeded=not errors)
        logger.log(
            logging.ERROR if errors else logging.INFO,
            "recovery run %d (%s) %s in %.3fs: %s",
            run.id,
            trigger.value,
            finished.status.value,
            elapsed,
            ", ".join(f"{key}={value}" for key, value in counts.to_json().items() if value) or "nothing to do",
        )
        # Where a slow sweep spends its time.
        logger.info(
            "recovery run %d task durations: %s",
            run.id,
            ", ".join(f"{name}={seconds * 1000:.0f}ms" for name, seconds in durations.items()),
        )
        return finished
