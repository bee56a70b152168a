"""The recovery scheduler embedded in the server: APScheduler on a real timer, sweeping and ticking
schedules on the leader only."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from queue_service.api.server import QueueServer
from queue_service.core.schedules import ScheduleInput
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.domain import RunStatus
from queue_service.scheduler import ELECTION_JOB, SCHEDULE_TICK_JOB, SWEEP_JOB
from queue_service.store.errors import StoreUnavailable
from tests.conftest import make_config


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def replica(database_url, clock, node_id: str) -> QueueServer:
    # Short real-time intervals; lease expiry follows the fake clock, which stands still here.
    settings = RecoverySettings(
        node_id=node_id, interval=timedelta(seconds=0.2), leader_lease_term=timedelta(seconds=1)
    )
    return QueueServer(make_config(database_url, recovery=settings), clock=clock)


def finished_runs(server: QueueServer):
    return [run for run in server.recovery.runs.page(page_size=100).items if run.finished_at]


def test_serve_sweeps_on_a_timer_on_the_leader_only(database_url, clock):
    first, second = replica(database_url, clock, "first"), replica(database_url, clock, "second")
    first.start()
    try:
        wait_for(lambda: first.recovery_scheduler.is_leader)
        second.start()
        wait_for(lambda: len(finished_runs(first)) >= 3)

        runs = finished_runs(first)
        assert {(run.trigger, run.node_id, run.status) for run in runs} == {("scheduled", "first", RunStatus.SUCCEEDED)}
        assert not second.recovery_scheduler.is_leader
        # Both replicas read the leader and its next sweep from the lease row.
        for replica_server in (first, second):
            leader = replica_server.recovery.runs.stats().leader
            assert leader is not None and leader.holder == "first" and leader.next_run_at is not None
        for job_id in (ELECTION_JOB, SWEEP_JOB):
            job = first.recovery_scheduler.scheduler.get_job(job_id)
            assert (job.max_instances, job.coalesce) == (1, True)

        # Stopping the leader resigns; the second replica takes over on its next election round.
        first.stop(0)
        wait_for(lambda: second.recovery_scheduler.is_leader)
        wait_for(lambda: any(run.node_id == "second" for run in finished_runs(second)))
    finally:
        second.stop(0)
        if first.recovery_scheduler.scheduler.running:
            first.stop(0)


def test_interval_zero_runs_no_scheduler(database_url, clock):
    server = QueueServer(make_config(database_url, recovery=RecoverySettings(interval=timedelta(0))), clock=clock)
    try:
        assert server.recovery_scheduler is None
        assert server.recovery.run_once().status == RunStatus.SUCCEEDED  # manual sweeps still work
    finally:
        server.stop(0)


def test_the_leader_enqueues_due_schedule_slots_on_its_timer(database_url, clock):
    clock.set(datetime(2026, 2, 14, 10, 30, 30, tzinfo=UTC))
    leader = replica(database_url, clock, "first")
    leader.schedules.create(
        "every-minute",
        ScheduleInput(cron="* * * * *", time_zone="UTC", queue_name="ticks", job_name="tick"),
        actor="test",
    )
    leader.start()
    try:
        wait_for(lambda: leader.recovery_scheduler.is_leader)
        job = leader.recovery_scheduler.scheduler.get_job(SCHEDULE_TICK_JOB)
        assert (job.max_instances, job.coalesce) == (1, True)
        clock.set(datetime(2026, 2, 14, 10, 31, 2, tzinfo=UTC))
        wait_for(lambda: leader.schedules.get("every-minute").record.last_run_at is not None)
        assert leader.jobs.get_job("schedule:every-minute:2026-02-14T10:31:00Z").job.record.queue_name == "ticks"
    finally:
        leader.stop(0)


def test_a_database_outage_is_logged_by_the_timer_jobs_without_a_traceback(database_url, clock, caplog, monkeypatch):
    # Health reports an outage; a traceback per timer tick would only bury the one line that matters.
    server = replica(database_url, clock, "first")
    try:
        scheduler = server.recovery_scheduler
        assert scheduler.elect_once()

        def unavailable(*args, **kwargs):
            raise StoreUnavailable("database unavailable")

        monkeypatch.setattr(scheduler.schedule_tick, "run_once", unavailable)
        monkeypatch.setattr(scheduler.recovery, "run_once", unavailable)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="queue_service.scheduler"):
            scheduler.tick_schedules()
            assert scheduler.sweep_once() is None
        records = [record for record in caplog.records if record.name == "queue_service.scheduler"]
        assert [record.levelno for record in records] == [logging.WARNING, logging.WARNING]
        assert all(record.exc_info is None and "database unavailable" in record.getMessage() for record in records)
    finally:
        server.stop(0)
