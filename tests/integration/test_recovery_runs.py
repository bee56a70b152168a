"""Recovery runs: the record of each sweep, failures that stop nothing, the single-sweeper lock, status pages."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from queue_service.core.errors import Aborted, InvalidArgument
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.core.sweep.runner import Recovery, Trigger
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.task import SweepTask, no_checkpoint
from queue_service.domain import JobState, RunStatus
from queue_service.store.database import Database
from queue_service.store.schema import queue_jobs


def recovery_for(job_manager, node_id="node-a", **settings) -> Recovery:
    return Recovery(job_manager, RecoverySettings(node_id=node_id, **settings))


def stall(job_manager, clock, *job_ids: str) -> None:
    job_manager.enqueue([JobSpec("emails", "send", job_id=job_id) for job_id in job_ids])
    job_manager.lease(["emails"], worker_id="w1", max_jobs=len(job_ids))
    clock.advance(61)


def test_a_run_is_recorded_with_its_counts(job_manager, clock):
    stall(job_manager, clock, "a", "b")
    recovery = recovery_for(job_manager)

    run = recovery.run_once(Trigger.SCHEDULED)

    assert run.status == RunStatus.SUCCEEDED
    assert run.error is None
    assert run.trigger == "scheduled"
    assert run.node_id == "node-a"
    assert run.started_at == clock.now()
    assert run.finished_at == clock.now()
    assert run.counts["stalled_jobs"] == 2
    assert set(run.counts) == {
        "stalled_jobs",
        "stalled_jobs_dead_lettered",
        "stalled_jobs_cancelled",
        "exhausted_jobs",
        "due_retries",
        "deleted_completed_jobs",
        "deleted_retry_log_rows",
        "deleted_activity_rows",
        "dead_letter_alerts",
        "dead_letter_alerts_cleared",
        "alert_webhook_failures",
        "alert_emails_sent",
        "alert_email_failures",
        "alert_emails_given_up",
    }
    (stored,) = recovery.runs.page().items
    assert stored == run


def test_a_run_that_fails_midway_is_recorded_as_failed_and_the_next_run_works(job_manager, clock, database):
    stall(job_manager, clock, "poison", "healthy")
    job_manager.enqueue([JobSpec("emails", "send", job_id="done")])
    job_manager.track_start("done")
    job_manager.complete("done", 1)
    clock.advance(timedelta(days=8))
    # A stored policy no code would write: the stalled-jobs task cannot evaluate it.
    with database.transaction() as repo:
        repo.connection.execute(
            update(queue_jobs).where(queue_jobs.c.job_id == "poison").values(retry_policy={"max_retries": "many"})
        )
    recovery = recovery_for(job_manager)

    failed = recovery.run_once()

    assert failed.status == RunStatus.FAILED
    assert failed.error.startswith("stalled_jobs: ValueError")
    assert failed.finished_at is not None
    # The batch that failed was rolled back whole; the tasks after it still ran.
    assert failed.counts["stalled_jobs"] == 0
    assert failed.counts["deleted_completed_jobs"] == 1
    assert job_manager.get_job("healthy").job.record.state == JobState.ACTIVE

    with database.transaction() as repo:
        repo.connection.execute(update(queue_jobs).where(queue_jobs.c.job_id == "poison").values(retry_policy=None))
    succeeded = recovery.run_once()

    assert succeeded.status == RunStatus.SUCCEEDED
    assert succeeded.error is None
    assert succeeded.counts["stalled_jobs"] == 2
    totals = recovery.runs.totals()
    assert (totals.total, totals.succeeded, totals.failed) == (2, 1, 1)
    assert recovery.runs.last_finished().id == succeeded.id


def test_a_task_that_raises_does_not_stop_the_others(job_manager, clock):
    ran = []

    class Broken(SweepTask[None]):
        name = "broken"

        def run_once(self, checkpoint=no_checkpoint) -> None:
            raise RuntimeError("disk on fire")

    class After(SweepTask[int]):
        name = "after"

        def run_once(self, checkpoint=no_checkpoint) -> int:
            ran.append("after")
            return 7

        def add_counts(self, result: int, counts) -> None:
            counts.due_retries += result

    recovery = Recovery(job_manager, RecoverySettings(node_id="n"), tasks=[Broken(), After()])
    run = recovery.run_once()

    assert run.status == RunStatus.FAILED
    assert run.error == "broken: RuntimeError: disk on fire"
    assert ran == ["after"]
    assert run.counts["due_retries"] == 7


def test_a_run_left_running_by_a_dead_node_is_closed_by_the_next_run(job_manager, clock):
    dead = recovery_for(job_manager, node_id="dead-node")
    abandoned = dead.runs.start("scheduled")  # the node died here, holding nothing any more
    clock.advance(300)

    run = recovery_for(job_manager, node_id="live-node").run_once()

    runs = {record.id: record for record in dead.runs.page().items}
    assert runs[abandoned.id].status == RunStatus.FAILED
    assert runs[abandoned.id].error.startswith("abandoned")
    assert runs[abandoned.id].finished_at == clock.now()
    assert runs[run.id].status == RunStatus.SUCCEEDED


def test_a_node_killed_mid_sweep_holds_the_sweep_lock_no_longer_than_a_leader_lease_term(job_manager, clock):
    term = timedelta(seconds=5)
    killed = recovery_for(job_manager, node_id="killed-node", leader_lease_term=term)
    assert killed.sweep_lock.elect()  # and then SIGKILL: it never resigns
    live = recovery_for(job_manager, node_id="live-node", leader_lease_term=term)

    clock.advance(term - timedelta(seconds=1))
    with pytest.raises(Aborted):
        live.run_once()
    clock.advance(timedelta(seconds=1))

    assert live.run_once().status == RunStatus.SUCCEEDED


class BlockingTask(SweepTask[None]):
    """A task that holds the sweep open until the test lets it go."""

    name = "block"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def run_once(self, checkpoint=no_checkpoint) -> None:
        self.entered.set()
        assert self.release.wait(30)
        checkpoint()


def run_in_thread(recovery: Recovery) -> tuple[threading.Thread, list]:
    results: list = []

    def target():
        try:
            results.append(recovery.run_once())
        except Exception as error:  # noqa: BLE001 - handed to the test
            results.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, results


def test_only_one_sweep_runs_at_a_time_across_nodes(database_url, clock):
    """Two nodes, each with its own engine, on one database."""
    database_b = Database(database_url)
    database_a = Database(database_url)
    try:
        blocker = BlockingTask()
        node_a = Recovery(JobManager(database_a, clock), RecoverySettings(node_id="node-a"), tasks=[blocker])
        node_b = Recovery(JobManager(database_b, clock), RecoverySettings(node_id="node-b"))
        thread, results = run_in_thread(node_a)
        assert blocker.entered.wait(30)

        with pytest.raises(Aborted) as elsewhere:
            node_b.run_once()
        assert "already running on node 'node-a'" in str(elsewhere.value)
        with pytest.raises(Aborted) as here:
            node_a.run_once()
        assert "already running on this node" in str(here.value)

        blocker.release.set()
        thread.join(30)
        (run_a,) = results
        assert run_a.status == RunStatus.SUCCEEDED
        # The lock is free again: the other node sweeps now.
        assert node_b.run_once().status == RunStatus.SUCCEEDED
        assert node_b.runs.totals().total == 2
    finally:
        database_a.dispose()
        database_b.dispose()


def test_a_sweep_that_outlives_its_lock_stops_and_the_taker_closes_it(database_url, clock):
    database_a, database_b = Database(database_url), Database(database_url)
    try:
        blocker = BlockingTask()
        settings = {"sweep_lock_ttl": timedelta(minutes=2)}
        node_a = Recovery(
            JobManager(database_a, clock), RecoverySettings(node_id="node-a", **settings), tasks=[blocker]
        )
        node_b = Recovery(JobManager(database_b, clock), RecoverySettings(node_id="node-b", **settings))
        thread, results = run_in_thread(node_a)
        assert blocker.entered.wait(30)
        clock.advance(timedelta(minutes=2))  # node A is stuck past its lock's ttl

        run_b = node_b.run_once()
        blocker.release.set()
        thread.join(30)

        assert run_b.status == RunStatus.SUCCEEDED
        (run_a,) = results
        assert run_a.status == RunStatus.FAILED
        assert run_a.error.startswith("abandoned")
    finally:
        database_a.dispose()
        database_b.dispose()


def test_stopping_the_node_interrupts_a_sweep_between_batches(job_manager, clock):
    blocker = BlockingTask()
    recovery = Recovery(job_manager, RecoverySettings(node_id="n"), tasks=[blocker])
    thread, results = run_in_thread(recovery)
    assert blocker.entered.wait(30)

    recovery.request_stop()
    blocker.release.set()
    thread.join(30)

    (run,) = results
    assert run.status == RunStatus.FAILED
    assert run.error == "block: stopped: the node is shutting down"


def test_recent_runs_page_newest_first_and_stay_stable(job_manager, clock):
    recovery = recovery_for(job_manager)
    ids = []
    for _ in range(5):
        ids.append(recovery.run_once().id)
        clock.advance(300)

    first = recovery.runs.page(page_size=2)
    assert [run.id for run in first.items] == ids[:-3:-1]
    recovery.run_once()  # a new run does not shift the next page
    second = recovery.runs.page(page_size=2, page_token=first.next_page_token)
    assert [run.id for run in second.items] == [ids[2], ids[1]]
    third = recovery.runs.page(page_size=2, page_token=second.next_page_token)
    assert [run.id for run in third.items] == [ids[0]]
    assert third.next_page_token == ""

    with pytest.raises(InvalidArgument) as bad:
        recovery.runs.page(page_token="not-a-token")
    assert bad.value.field == "page_token"
    with pytest.raises(InvalidArgument):
        recovery.runs.page(page_size=-1)
