"""Runs recovery sweeps on a timer inside `queue-service serve`, on the elected leader only.

Two APScheduler jobs: an election round every quarter of the leader lease term, and the sweep
every `interval`. The leader's lease row lasts three quarters of a term past each renewal, so
when the leader dies the row lapses and the next election round of another replica takes it
within one term. Both jobs have max_instances=1 and coalesce missed runs into one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from queue_service.core.errors import Aborted
from queue_service.core.leadership import RECOVERY_LEADER, Lease
from queue_service.core.schedules import ScheduleTick
from queue_service.core.sweep.runner import Recovery, Trigger
from queue_service.domain import RecoveryRunRecord
from queue_service.store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

LEADER_LEASE = RECOVERY_LEADER
ELECTION_JOB = "recovery-election"
SWEEP_JOB = "recovery-sweep"
SCHEDULE_TICK_JOB = "schedule-tick"


class RecoveryScheduler:
    def __init__(self, recovery: Recovery, schedule_tick: ScheduleTick | None = None) -> None:
        settings = recovery.settings
        if settings.interval.total_seconds() <= 0:
            raise ValueError("the recovery scheduler needs a positive interval")
        self.recovery = recovery
        self.schedule_tick = schedule_tick
        self.interval = settings.interval
        self.election_interval = settings.leader_lease_term / 4
        self.leader = Lease(
            recovery.database, recovery.clock, LEADER_LEASE, recovery.node_id, settings.leader_lease_term * 3 / 4
        )
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    @property
    def is_leader(self) -> bool:
        return self.leader.is_held

    def next_sweep_at(self) -> datetime | None:
        """When the timer fires next, lead or not; stored with the leader lease for every replica to read."""
        if not self.scheduler.running:
            return None
        job = self.scheduler.get_job(SWEEP_JOB)
        if not job or not job.next_run_time:
            return None
        next_run = job.next_run_time.astimezone(UTC)
        # While the sweep job runs, APScheduler may not have moved its next run time on yet. Its
        # timer runs on real time, so this compares with real time, not the injected clock.
        now = datetime.now(UTC)
        return next_run if next_run > now else now + self.interval

    def start(self) -> RecoveryScheduler:
        self.scheduler.add_job(
            self.elect_once,
            IntervalTrigger(seconds=self.election_interval.total_seconds(), timezone=UTC),
            id=ELECTION_JOB,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self.sweep_once,
            IntervalTrigger(seconds=self.interval.total_seconds(), timezone=UTC),
            id=SWEEP_JOB,
        )
        if self.schedule_tick:
            self.scheduler.add_job(
                self.tick_schedules,
                IntervalTrigger(seconds=self.schedule_tick.settings.tick_interval.total_seconds(), timezone=UTC),
                id=SCHEDULE_TICK_JOB,
            )
        self.scheduler.start()
        logger.info(
            "recovery scheduler started: sweep every %ss, leader lease term %ss, node %s",
            self.interval.total_seconds(),
            self.recovery.settings.leader_lease_term.total_seconds(),
            self.recovery.node_id,
        )
        return self

    def stop(self) -> None:
        """Stop a running sweep at its next batch, wait for it, and resign so another replica takes over now."""
        self.recovery.request_stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            self.leader.resign()
        except StoreUnavailable as error:
            logger.warning("could not resign recovery leadership (it lapses by itself): %s", error)

    def elect_once(self) -> bool:
        """One election round; True if this replica leads afterwards."""
        try:
            return self.leader.tick(next_run_at=self.next_sweep_at())
        except StoreUnavailable as error:
            logger.warning("recovery leader election failed: %s", error)
            return self.leader.is_held

    def sweep_once(self) -> RecoveryRunRecord | None:
        """The timed sweep: runs only on the leader and never raises, so neither the scheduler nor the
        server stops because of it. Returns the run, or None when it did not run."""
        if not self.is_leader:
            logger.debug("recovery sweep skipped: %s is not the leader", self.recovery.node_id)
            return None
        try:
            # Readers of the lease row see the following sweep's time, not this one's, from now on.
            if not self.leader.reelect(next_run_at=self.next_sweep_at()):
                return None
            return self.recovery.run_once(Trigger.SCHEDULED)
        except Aborted as error:
            logger.info("scheduled recovery sweep skipped: %s", error)
        except StoreUnavailable as error:
            logger.warning("scheduled recovery sweep could not reach the database: %s", error)
        except Exception:  # noqa: BLE001 - logged; the next interval tries again
            logger.exception("scheduled recovery sweep could not run")
        return None

    def tick_schedules(self) -> None:
        """Enqueues due cron slots, on the leader only; never raises (the next tick tries again)."""
        if not self.is_leader or self.schedule_tick is None:
            return
        try:
            self.schedule_tick.run_once()
        except StoreUnavailable as error:
            # An outage is reported by health; a traceback per tick would only bury it.
            logger.warning("schedule tick could not reach the database: %s", error)
        except Exception:  # noqa: BLE001 - logged; the next tick tries again
            logger.exception("schedule tick could not run")
