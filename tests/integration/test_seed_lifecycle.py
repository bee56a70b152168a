"""The seed's retry flow end to end over gRPC with a fake clock: four runs, 5/15/45 s, then the DLQ."""

from datetime import timedelta

import grpc
import pytest
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb


def lease_one(service, worker="worker-1"):
    response = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["whatsapp-messages"], worker_id=worker))
    return list(response.jobs)


def test_four_runs_with_seed_delays_then_dead_letter(service):
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="whatsapp-messages", job_name="send", job_id="job-1"))
    expected_delays = [5, 15, 45]
    for run in (1, 2, 3, 4):
        (job,) = lease_one(service)
        assert job.job_id == "job-1"
        assert job.attempt_number == run
        assert job.state == job_pb2.Job.STATE_ACTIVE
        decision = service.jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id="job-1", attempt_number=run, error=job_pb2.JobError(message="Connection timeout")
            )
        )
        if run < 4:
            delay = expected_delays[run - 1]
            assert decision.should_retry
            assert decision.retry_delay.ToTimedelta() == timedelta(seconds=delay)
            assert decision.next_retry_at.ToDatetime().replace(tzinfo=service.clock.now().tzinfo) == (
                service.clock.now() + timedelta(seconds=delay)
            )
            assert decision.remaining_retries == 4 - run
            assert not decision.moved_to_dead_letter
            # Not leasable a moment before the retry time, leasable exactly at it; no sweep needed.
            service.clock.advance(delay - 0.001)
            assert lease_one(service) == []
            service.clock.advance(0.001)
        else:
            assert not decision.should_retry
            assert decision.moved_to_dead_letter
            assert decision.dead_letter_id
            assert decision.remaining_retries == 0

    details = service.jobs.GetJob(pb.GetJobRequest(job_id="job-1"))
    assert details.job.state == job_pb2.Job.STATE_DEAD_LETTER
    assert details.job.dead_letter_id == decision.dead_letter_id
    assert [error.attempt_number for error in details.error_history] == [1, 2, 3, 4]
    assert [entry.decision for entry in details.retry_log] == [job_pb2.RETRY_DECISION_RETRY] * 3 + [
        job_pb2.RETRY_DECISION_DEAD_LETTER
    ]
    assert [entry.retry_delay.ToTimedelta().total_seconds() for entry in details.retry_log] == [5, 15, 45, 0]
    assert details.retry_log[-1].death_reason == job_pb2.DEATH_REASON_RETRIES_EXHAUSTED


def test_dead_letter_entry_keeps_the_whole_story(service):
    service.jobs.EnqueueJob(
        pb.EnqueueJobRequest(
            queue_name="whatsapp-messages", job_name="send", job_id="job-2", job_data={"to": "+3312345678"}
        )
    )
    (job,) = lease_one(service)
    decision = service.jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id="job-2",
            attempt_number=job.attempt_number,
            error=job_pb2.JobError(message="invalid phone number", type="ValueError", details="trace"),
            non_retryable=True,
        )
    )
    assert decision.moved_to_dead_letter and not decision.should_retry
    move = service.jobs.MoveToDeadLetter
    with pytest.raises(grpc.RpcError) as raised:
        move(pb.MoveToDeadLetterRequest(job_id="job-2", reason="again"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
