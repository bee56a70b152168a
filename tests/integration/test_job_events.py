"""The core reports job events only for transactions that commit."""

from __future__ import annotations

import pytest

from queue_service.core.errors import FailedPrecondition
from queue_service.core.events import JobEvent
from queue_service.core.jobs import JobManager, JobSpec, LifecycleSettings, ReportedError


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[JobEvent, str, int]] = []
        self.processed: list[tuple[str, float]] = []

    def job_event(self, event, queue_name, count=1):
        self.events.append((event, queue_name, count))

    def job_processed(self, queue_name, seconds):
        self.processed.append((queue_name, seconds))

    def lease_expiry_decided(self, job, decision, dead_letter_id):
        pass

    def sweep_finished(self, **_):
        pass


def test_events_follow_commits_only(database, clock):
    recorder = Recorder()
    jobs = JobManager(database, clock, LifecycleSettings(lease_poll_interval=0.05), events=recorder)
    jobs.enqueue(
        [JobSpec("emails", "send", job_id="a"), JobSpec("emails", "send", job_id="b"), JobSpec("sms", "send")],
        batch=True,
    )
    assert sorted(recorder.events) == [(JobEvent.ENQUEUED, "emails", 2), (JobEvent.ENQUEUED, "sms", 1)]

    recorder.events.clear()
    leased = jobs.lease(["emails"], max_jobs=2)
    assert recorder.events == [(JobEvent.STARTED, "emails", 2)]

    recorder.events.clear()
    with pytest.raises(FailedPrecondition):
        jobs.fail(leased[0].record.job_id, 5, ReportedError("stale"))
    with pytest.raises(FailedPrecondition):
        jobs.complete(leased[0].record.job_id, 9)
    assert recorder.events == []

    jobs.fail(leased[0].record.job_id, 1, ReportedError("boom"), non_retryable=True)
    assert recorder.events == [(JobEvent.FAILED, "emails", 1), (JobEvent.DEAD_LETTERED, "emails", 1)]


def test_after_commit_callbacks_skip_rolled_back_transactions(database):
    ran = []
    with pytest.raises(RuntimeError):
        with database.transaction() as repo:
            repo.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("abandon the transaction")
    with database.transaction() as repo:
        repo.after_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
