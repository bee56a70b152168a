"""A job made ready by the passage of time (a retry's delay ending, a job enqueued to run later)
reaches a waiting long-poll when it is due, not at that poll's next look."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from google.protobuf import duration_pb2
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from tests.conftest import make_config
from tests.integration import long_polls
from tests.integration.long_polls import stub

# Far longer than any test here waits: a lease that returns a job in time was woken, not polling.
POLL_SECONDS = 120
WAIT = timedelta(seconds=90)
WOKEN_WITHIN = 20
DELAY_SECONDS = 0.3


@pytest.fixture
def server(database_url) -> Iterator[QueueServer]:
    # The system clock: the job becomes due as real time passes.
    running = QueueServer(make_config(database_url, lifecycle=LifecycleSettings(lease_poll_interval=POLL_SECONDS)))
    running.start()
    try:
        yield running
    finally:
        running.stop(0)


def long_poll(server: QueueServer, queue: str):
    return long_polls.long_poll(server, queue, wait=WAIT, waiting_within=WOKEN_WITHIN)


def delay() -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(timedelta(seconds=DELAY_SECONDS))
    return value


def test_a_retry_reaches_a_waiting_long_poll_when_its_delay_ends(server):
    jobs = stub(server)
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="r-1"))
    [leased] = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], worker_id="first", max_jobs=1)).jobs
    call = long_poll(server, "emails")

    reported = time.monotonic()
    decision = jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id="r-1",
            attempt_number=leased.attempt_number,
            error=job_pb2.JobError(message="timeout"),
            retry_after=delay(),
        )
    )
    assert decision.should_retry

    [retried] = call.result(timeout=WOKEN_WITHIN).jobs
    assert (retried.job_id, retried.attempt_number) == ("r-1", leased.attempt_number + 1)
    assert time.monotonic() - reported >= DELAY_SECONDS


def test_a_job_enqueued_to_run_later_reaches_a_waiting_long_poll_when_due(server):
    call = long_poll(server, "emails")

    enqueued = time.monotonic()
    stub(server).EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="d-1", delay=delay()))

    [job] = call.result(timeout=WOKEN_WITHIN).jobs
    assert job.job_id == "d-1"
    assert time.monotonic() - enqueued >= DELAY_SECONDS
