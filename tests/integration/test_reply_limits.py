"""Replies that would outgrow what a gRPC client accepts: leases fill only what fits, job records stay readable."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from jobqueue import JobClient, RetryPolicy
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import update

from queue_service.store.schema import dead_letter_queue, queue_jobs
from tests.rpc_errors import assert_rejected, row_counts

# What a gRPC client accepts by default.
DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024


def job_states(service, job_ids):
    return [service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job.state for job_id in job_ids]


def test_the_readmes_batch_lease_delivers_what_fits_and_leaves_the_rest_waiting(service):
    with JobClient(service.target, timeout=30) as client:
        ids = [f"big-{index:03}" for index in range(100)]
        for job_id in ids:
            client.enqueue("reports", "render", {"blob": "x" * 50_000}, job_id=job_id)
        delivered = client.lease("reports", worker_id="w1", max_jobs=100)
        assert 0 < len(delivered) < 100
        leased = {job.job_id for job in delivered}
        states = dict(zip(ids, job_states(service, ids)))
        # Exactly the delivered jobs are ACTIVE; the others wait for the next call, no run used.
        assert {job_id for job_id, state in states.items() if state == job_pb2.Job.STATE_ACTIVE} == leased
        rest = [job_id for job_id in ids if job_id not in leased]
        assert all(states[job_id] == job_pb2.Job.STATE_WAITING for job_id in rest)
        while rest:
            batch = client.lease("reports", worker_id="w1", max_jobs=100)
            assert batch
            rest = [job_id for job_id in rest if job_id not in {job.job_id for job in batch}]


def test_the_python_client_states_its_own_receive_limit(service):
    options = [("grpc.max_receive_message_length", 1_000_000)]
    with JobClient(service.target, timeout=30, options=options) as client:
        for index in range(30):
            client.enqueue("reports", "render", {"blob": "x" * 50_000}, job_id=f"big-{index:02}")
        delivered = client.lease("reports", max_jobs=30)
        assert 10 < len(delivered) < 20


def test_a_stated_response_limit_bounds_the_batch(service):
    for index in range(10):
        service.jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id=f"j{index}", job_data={"blob": "y" * 10_000})
        )
    response = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"], max_jobs=10, max_response_bytes=35_000))
    assert len(response.jobs) == 3
    assert response.ByteSize() <= 35_000


def test_a_job_larger_than_the_stated_limit_is_refused_by_id_before_any_change(service):
    service.jobs.EnqueueJob(
        pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="heavy", job_data={"blob": "z" * 20_000})
    )
    before = row_counts(service.server.database)
    assert_rejected(
        service.jobs.LeaseJobs,
        pb.LeaseJobsRequest(queue_names=["q"], max_response_bytes=10_000),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "max_response_bytes",
        mentions="heavy",
    )
    assert row_counts(service.server.database) == before
    assert job_states(service, ["heavy"]) == [job_pb2.Job.STATE_WAITING]
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"])).jobs
    assert (job.job_id, job.attempt_number) == ("heavy", 1)


def test_a_negative_response_limit_is_refused(service):
    assert_rejected(
        service.jobs.LeaseJobs,
        pb.LeaseJobsRequest(queue_names=["q"], max_response_bytes=-1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_response_bytes",
    )


def test_enqueue_refuses_a_job_no_default_client_could_receive(service):
    # 700,000 numbers are 1.4 MB of JSON, within the payload limit, but 7.7 MB on the wire.
    data = {"numbers": [0] * 700_000}
    before = row_counts(service.server.database)
    assert_rejected(
        service.jobs.EnqueueJob,
        pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="huge", job_data=data),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "job_data",
    )
    assert row_counts(service.server.database) == before


# Job records

DETAILS = "d" * (64 * 1024)


def fail_many_times(service, job_id: str, failures: int, *, details: str = DETAILS, message: str = "boom") -> None:
    """Enqueue a job allowed `failures` runs and fail each of them with large error details."""
    service.jobs.EnqueueJob(
        pb.EnqueueJobRequest(
            queue_name="q", job_name="n", job_id=job_id, retry_policy=job_pb2.RetryPolicy(max_retries=failures - 1)
        )
    )
    for attempt in range(1, failures + 1):
        (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"])).jobs
        assert (job.job_id, job.attempt_number) == (job_id, attempt)
        service.jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id=job_id,
                attempt_number=attempt,
                error=job_pb2.JobError(message=f"{message} {attempt}", type="Crash", details=details),
                retry_after=Duration(),
            )
        )


def assert_bounded_history(errors, total: int) -> None:
    attempts = [error.attempt_number for error in errors]
    assert attempts == [1, 2, 3, total - 7, *range(total - 6, total + 1)]
    summary = errors[3]
    assert (summary.type, summary.omitted_count) == ("ErrorsOmitted", total - 10)
    kept = errors[:3] + errors[4:]
    assert all(error.details == DETAILS and error.omitted_count == 0 for error in kept)


def test_a_job_failing_49_times_with_large_details_stays_readable(service):
    fail_many_times(service, "flaky", 49)
    limit = [("grpc.max_receive_message_length", DEFAULT_RECEIVE_BYTES)]
    channel = grpc.insecure_channel(service.target, options=limit)
    try:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        job = jobs.GetJob(pb.GetJobRequest(job_id="flaky"))
        assert job.job.state == job_pb2.Job.STATE_DEAD_LETTER
        assert_bounded_history(job.error_history, 49)
        assert [row.attempt_number for row in job.retry_log] == [1, 2, 3, *range(43, 50)]
        assert job.retry_log_omitted_count == 39
        details = admin.GetJobDetails(admin_pb.GetJobDetailsRequest(job_id="flaky"))
        assert_bounded_history(details.error_history, 49)
        assert details.retry_log_omitted_count == 39
        entry = admin.GetDeadLetterJob(admin_pb.GetDeadLetterJobRequest(id=job.job.dead_letter_id))
        assert_bounded_history(entry.entry.error_history, 49)
        assert entry.retry_log_omitted_count == 39
        # Every decision is still in the retry log, a page at a time.
        log = admin.ListRetryLog(admin_pb.ListRetryLogRequest(job_id="flaky", page_size=10))
        assert len(log.entries) == 10 and log.next_page_token
    finally:
        channel.close()


def test_rows_stored_before_the_bound_are_trimmed_on_read(service, database):
    fail_many_times(service, "old", 2, details="x")
    legacy = [
        {"message": f"boom {n}", "type": "Crash", "details": DETAILS, "attempt_number": n, "occurred_at": None}
        for n in range(1, 101)
    ]
    with database.engine.begin() as connection:
        connection.execute(update(queue_jobs).where(queue_jobs.c.job_id == "old").values(error_history=legacy))
        connection.execute(
            update(dead_letter_queue).where(dead_letter_queue.c.job_id == "old").values(error_history=legacy)
        )
    channel = grpc.insecure_channel(
        service.target, options=[("grpc.max_receive_message_length", DEFAULT_RECEIVE_BYTES)]
    )
    try:
        job = job_service_pb2_grpc.JobServiceStub(channel).GetJob(pb.GetJobRequest(job_id="old"))
        assert_bounded_history(job.error_history, 100)
        entry = admin_service_pb2_grpc.AdminServiceStub(channel).GetDeadLetterJob(
            admin_pb.GetDeadLetterJobRequest(id=job.job.dead_letter_id)
        )
        assert_bounded_history(entry.entry.error_history, 100)
    finally:
        channel.close()


def test_a_record_whose_errors_and_payload_outgrow_4_mib_is_shortened_to_fit(service):
    # A 1 MB payload (twice in GetJobDetails: the job's and the entry's) and 15 failures with the
    # largest messages (10,000 four-byte characters) and details: 5.5 MB in full.
    service.jobs.EnqueueJob(
        pb.EnqueueJobRequest(
            queue_name="q",
            job_name="n",
            job_id="fat",
            job_data={"blob": "p" * 1_000_000},
            retry_policy=job_pb2.RetryPolicy(max_retries=14),
        )
    )
    for attempt in range(1, 16):
        service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"]))
        service.jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id="fat",
                attempt_number=attempt,
                error=job_pb2.JobError(message="\U0001d11e" * 10_000, details=DETAILS),
                retry_after=Duration(),
            )
        )
    channel = grpc.insecure_channel(
        service.target, options=[("grpc.max_receive_message_length", DEFAULT_RECEIVE_BYTES)]
    )
    try:
        details = admin_service_pb2_grpc.AdminServiceStub(channel).GetJobDetails(
            admin_pb.GetJobDetailsRequest(job_id="fat")
        )
    finally:
        channel.close()
    assert details.ByteSize() <= DEFAULT_RECEIVE_BYTES
    assert details.job.job_data["blob"] == "p" * 1_000_000
    assert details.job.state == job_pb2.Job.STATE_DEAD_LETTER
    shortened = [error for error in details.error_history if error.details != DETAILS and error.omitted_count == 0]
    assert shortened and all("more characters left out of this reply" in error.details for error in shortened)


def test_the_dashboard_shows_the_entry_of_a_job_that_failed_49_times(secured_service):
    from starlette.testclient import TestClient

    from queue_service.dashboard.app import DashboardSettings, create_app
    from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
    from tests.integration.test_dashboard import sign_in, text_of

    with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=30) as client:
        client.enqueue("q", "n", {}, job_id="flaky", retry_policy=RetryPolicy(max_retries=48))
        for attempt in range(1, 50):
            (job,) = client.lease("q")
            client.track_failure(
                "flaky", attempt, f"boom {attempt}", error_type="Crash", details=DETAILS, retry_after=timedelta(0)
            )
        details = client.get_job("flaky")
        assert details.retry_log_omitted_count == 39 and details.error_history[3].omitted_count == 39
        entry_id = details.job.dead_letter_id
    app = create_app(DashboardSettings(target=secured_service.target))
    with TestClient(app, base_url="https://testserver") as browser:
        assert sign_in(browser, ADMIN_TOKEN).status_code == 303
        page = browser.get(f"/dlq/{entry_id}")
    app.state.dashboard.close()
    assert page.status_code == 200
    text = text_of(page)
    assert "boom 1" in text and "boom 49" in text and "39 errors omitted" in text


def test_a_page_of_large_errors_is_shortened_to_fit(service):
    # 49 errors of 64 KiB: a default page of the retry log (50 rows) would be 3.2 MB of details
    # alone; with 10,000-character messages of 4-byte characters it would be 5.2 MB.
    fail_many_times(service, "flaky", 49, message="\U0001d11e" * 9_990)
    channel = grpc.insecure_channel(
        service.target, options=[("grpc.max_receive_message_length", DEFAULT_RECEIVE_BYTES)]
    )
    try:
        page = admin_service_pb2_grpc.AdminServiceStub(channel).ListRetryLog(
            admin_pb.ListRetryLogRequest(job_id="flaky")
        )
    finally:
        channel.close()
    assert len(page.entries) == 49
    assert all(entry.error.details.endswith("left out of this reply]") for entry in page.entries)
