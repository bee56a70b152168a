"""job_message sets only the fields a job has; the message is the one it always was."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from jobqueue.v1 import job_pb2

from queue_service.api import convert
from queue_service.api.convert import JOB_STATES, duration_ms, job_error, retry_policy_message, struct, timestamp
from queue_service.domain import ErrorInfo, JobRecord, JobState, JobView

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def reference_message(view: JobView, *, summary: bool = False) -> job_pb2.Job:
    """job_message as it was written before it set only the fields a job has."""
    job = view.record
    return job_pb2.Job(
        job_id=job.job_id,
        queue_name=job.queue_name,
        job_name=job.job_name,
        job_data=None if summary else struct(job.job_data),
        state=JOB_STATES[job.state],
        priority=job.priority,
        attempt_number=job.attempt_number,
        remaining_retries=view.remaining_retries,
        retry_policy=retry_policy_message(job.retry_policy),
        run_at=timestamp(job.run_at),
        next_retry_at=timestamp(job.run_at) if job.state == JobState.FAILED else None,
        lease_expires_at=timestamp(job.lease_expires_at) if job.state == JobState.ACTIVE else None,
        worker_id=job.worker_id or "",
        last_error=job_error(job.last_error),
        result=None if summary else struct(job.result),
        processing_duration=duration_ms(job.processing_duration_ms),
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        started_at=timestamp(job.started_at),
        completed_at=timestamp(job.completed_at),
        dead_letter_id=job.dead_letter_id or "",
        trace_parent=job.trace_parent,
        unique_key=job.unique_key or "",
        retry_rule=job.retry_rule,
        first_failed_at=timestamp(job.first_failed_at),
        cancel_requested_at=timestamp(job.cancel_requested_at),
    )


MINIMAL = JobRecord(
    id=1,
    job_id="j",
    queue_name="q",
    job_name="n",
    job_data={},
    state=JobState.WAITING,
    priority=0,
    attempt_number=0,
    budget_start=0,
    retry_policy=None,
    run_at=NOW,
    lease_expires_at=None,
    worker_id=None,
    last_error=None,
    error_history=[],
    result=None,
    processing_duration_ms=None,
    created_at=NOW,
    updated_at=NOW,
    started_at=None,
    completed_at=None,
    dead_letter_id=None,
)
FULL = dataclasses.replace(
    MINIMAL,
    job_data={"to": "a@example.com", "n": [1, 2.5, None, True], "nested": {"é": "x"}},
    state=JobState.ACTIVE,
    priority=-3,
    attempt_number=4,
    budget_start=1,
    retry_policy={"max_retries": 7, "retry_delays_ms": [1000, 2000], "rules": [{"error_type": "IOError"}]},
    lease_expires_at=NOW + timedelta(seconds=30),
    worker_id="w1",
    last_error=ErrorInfo(message="boom", type="IOError", details="trace", attempt_number=3, occurred_at=NOW),
    result={"ok": True},
    processing_duration_ms=1250,
    started_at=NOW,
    completed_at=NOW + timedelta(seconds=1),
    dead_letter_id="d-1",
    trace_parent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    unique_key="key",
    unique_states=frozenset({JobState.WAITING}),
    retry_rule="IOError",
    first_failed_at=NOW - timedelta(minutes=1),
    cancel_requested_at=NOW,
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECORDS = {
    "minimal": MINIMAL,
    "full": FULL,
    "failed": dataclasses.replace(FULL, state=JobState.FAILED),
    "completed with empty result": dataclasses.replace(
        MINIMAL, state=JobState.COMPLETED, result={}, processing_duration_ms=0, completed_at=NOW
    ),
    "naive times at the epoch": dataclasses.replace(
        MINIMAL, run_at=EPOCH.replace(tzinfo=None), created_at=EPOCH, updated_at=EPOCH, started_at=EPOCH
    ),
    "active without a lease": dataclasses.replace(MINIMAL, state=JobState.ACTIVE),
    "empty policy": dataclasses.replace(MINIMAL, retry_policy={}),
}


@pytest.mark.parametrize("name", RECORDS)
@pytest.mark.parametrize("summary", [False, True])
@pytest.mark.parametrize("remaining_retries", [0, 3])
def test_the_message_is_the_one_built_field_by_field(name, summary, remaining_retries):
    view = JobView(RECORDS[name], remaining_retries)
    expected = reference_message(view, summary=summary)
    message = convert.job_message(view, summary=summary)
    assert [field.name for field, _ in message.ListFields()] == [field.name for field, _ in expected.ListFields()]
    assert message.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert message == expected
