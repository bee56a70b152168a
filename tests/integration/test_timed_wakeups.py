"""A job made ready by the passage of time (a retry's delay ending, a job enqueued to run later)
reaches a waiting long-poll when it is due, not at that poll's next look."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from tests.conftest import make_config
from tests.integration.long_polls import (
    POLL_SECONDS,
    WOKEN_WITHIN,
    duration,
    fail_with_retry_after,
    leased_job,
    long_poll,
    stub,
)

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


def test_a_retry_reaches_a_waiting_long_poll_when_its_delay_ends(server):
    jobs = stub(server)
    leased = leased_job(jobs, "emails", "r-1")
    call = long_poll(server, "emails")

    reported = time.monotonic()
    fail_with_retry_after(jobs, leased, DELAY_SECONDS)

    [retried] = call.result(timeout=WOKEN_WITHIN).jobs
    assert (retried.job_id, retried.attempt_number) == ("r-1", leased.attempt_number + 1)
    assert time.monotonic() - reported >= DELAY_SECONDS


def test_a_job_enqueued_to_run_later_reaches_a_waiting_long_poll_when_due(server):
    call = long_poll(server, "emails")

    enqueued = time.monotonic()
    stub(server).EnqueueJob(
        pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="d-1", delay=duration(DELAY_SECONDS))
    )

    [job] = call.result(timeout=WOKEN_WITHIN).jobs
    assert job.job_id == "d-1"
    assert time.monotonic() - enqueued >= DELAY_SECONDS
