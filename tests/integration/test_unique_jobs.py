"""Unique jobs over gRPC on both backends: duplicates return the job that counts, windows and
states decide what counts, and the unique index alone keeps concurrent producers to one job."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import select, text

from queue_service.api.server import QueueServer
from queue_service.domain import UNIQUE_REQUIRED_STATES
from queue_service.store import migrate
from queue_service.store.database import Database
from queue_service.store.schema import UNIQUE_SLOT_INDEX, queue_jobs
from tests.conftest import BACKENDS, make_config
from tests.databases import empty_database
from tests.rpc_errors import row_counts

PRODUCERS = 8
Job = job_pb2.Job


def unique(key: str = "report-42", **options) -> pb.UniqueOptions:
    return pb.UniqueOptions(unique_key=key, **options)


def enqueue(jobs, **fields) -> pb.EnqueueJobResponse:
    fields.setdefault("queue_name", "reports")
    fields.setdefault("job_name", "build")
    return jobs.EnqueueJob(pb.EnqueueJobRequest(**fields))


def lease_one(service, queue="reports") -> job_pb2.Job:
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w1")).jobs
    return job


def complete(service, job: job_pb2.Job) -> None:
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))


def dead_letter(service, job: job_pb2.Job) -> str:
    failure = service.jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=job.job_id,
            attempt_number=job.attempt_number,
            error=job_pb2.JobError(message="boom"),
            non_retryable=True,
        )
    )
    return failure.dead_letter_id


def test_a_second_enqueue_with_the_key_returns_the_first_job(service, database):
    first = enqueue(service.jobs, job_data={"v": 1}, unique=unique())
    service.clock.advance(30)
    again = enqueue(service.jobs, job_data={"v": 2}, priority=5, unique=unique())
    assert first.created and not again.created
    assert again.job == first.job
    assert first.job.unique_key == "report-42"
    assert service.jobs.GetJob(pb.GetJobRequest(job_id=first.job.job_id)).job.unique_key == "report-42"
    assert row_counts(database)["queue_jobs"] == 1


def test_the_key_is_per_queue_and_other_keys_are_other_jobs(service, database):
    first = enqueue(service.jobs, unique=unique())
    other_queue = enqueue(service.jobs, queue_name="other", unique=unique())
    other_key = enqueue(service.jobs, unique=unique("report-43"))
    not_unique = enqueue(service.jobs)
    assert all(response.created for response in (first, other_queue, other_key, not_unique))
    assert not_unique.job.unique_key == ""
    assert row_counts(database)["queue_jobs"] == 4


def test_a_duplicate_with_a_new_job_id_returns_the_job_holding_the_key(service, database):
    first = enqueue(service.jobs, job_id="a", unique=unique())
    again = enqueue(service.jobs, job_id="b", unique=unique())
    assert not again.created and again.job.job_id == "a"
    # The job_id rule comes first: an existing job_id is that job, whatever its key.
    by_id = enqueue(service.jobs, job_id="a", unique=unique("another"))
    assert not by_id.created and by_id.job == first.job
    assert row_counts(database)["queue_jobs"] == 1


def test_a_duplicate_counts_only_within_its_window(service, database):
    hour = timedelta(hours=1)
    start = service.clock.now()
    window_end = start - (start - start.replace(minute=0, second=0, microsecond=0)) + hour
    first = enqueue(service.jobs, unique=unique(window=hour))
    service.clock.advance((window_end - start) - timedelta(microseconds=1))
    inside = enqueue(service.jobs, unique=unique(window=hour))
    assert not inside.created and inside.job.job_id == first.job.job_id
    service.clock.advance(timedelta(microseconds=1))  # the next window starts
    next_window = enqueue(service.jobs, unique=unique(window=hour))
    assert next_window.created and next_window.job.job_id != first.job.job_id
    # Without a window the key spans all time, apart from the windowed jobs.
    forever = enqueue(service.jobs, unique=unique())
    assert forever.created
    service.clock.advance(timedelta(days=400))
    assert enqueue(service.jobs, unique=unique()).job.job_id == forever.job.job_id
    assert row_counts(database)["queue_jobs"] == 3


def test_a_job_counts_while_unfinished_and_a_finished_one_frees_the_key(service, database):
    first = enqueue(service.jobs, unique=unique()).job
    running = lease_one(service)
    assert enqueue(service.jobs, unique=unique()).job.job_id == first.job_id  # ACTIVE counts
    service.jobs.TrackFailure(
        pb.TrackFailureRequest(job_id=running.job_id, attempt_number=1, error=job_pb2.JobError(message="flaky"))
    )
    assert enqueue(service.jobs, unique=unique()).job.job_id == first.job_id  # FAILED counts
    service.clock.advance(timedelta(hours=1))
    complete(service, lease_one(service))
    after = enqueue(service.jobs, unique=unique())
    assert after.created and after.job.job_id != first.job_id
    assert row_counts(database)["queue_jobs"] == 2


def test_states_may_add_finished_states_to_those_that_count(service):
    states = [*[Job.State.Value(f"STATE_{state.name}") for state in UNIQUE_REQUIRED_STATES], Job.STATE_COMPLETED]
    first = enqueue(service.jobs, unique=unique(states=states)).job
    complete(service, lease_one(service))
    again = enqueue(service.jobs, unique=unique(states=states))
    assert not again.created and again.job.job_id == first.job_id
    assert again.job.state == Job.STATE_COMPLETED


def test_a_redriven_job_that_left_its_states_does_not_collide_with_its_successor(service, database):
    first = enqueue(service.jobs, unique=unique()).job
    entry = dead_letter(service, lease_one(service))
    successor = enqueue(service.jobs, unique=unique())
    assert successor.created
    service.admin.RetryDeadLetterJob(admin_service_pb2.RetryDeadLetterJobRequest(id=entry))
    redriven = service.jobs.GetJob(pb.GetJobRequest(job_id=first.job_id)).job
    assert redriven.state == Job.STATE_WAITING and redriven.unique_key == "report-42"
    # The successor still holds the key; the redriven job holds none.
    assert enqueue(service.jobs, unique=unique()).job.job_id == successor.job.job_id
    with database.engine.connect() as connection:
        slots = dict(connection.execute(select(queue_jobs.c.job_id, queue_jobs.c.unique_slot)).all())
    assert slots[first.job_id] is None and slots[successor.job.job_id] is not None


def test_a_redriven_job_that_counted_while_dead_keeps_its_key(service):
    states = [Job.STATE_WAITING, Job.STATE_ACTIVE, Job.STATE_FAILED, Job.STATE_DEAD_LETTER]
    first = enqueue(service.jobs, unique=unique(states=states)).job
    entry = dead_letter(service, lease_one(service))
    assert not enqueue(service.jobs, unique=unique(states=states)).created
    service.admin.RetryDeadLetterJob(admin_service_pb2.RetryDeadLetterJobRequest(id=entry))
    assert enqueue(service.jobs, unique=unique(states=states)).job.job_id == first.job_id


def test_a_batch_makes_one_job_per_key(service, database):
    request = pb.EnqueueJobsRequest(
        jobs=[
            pb.EnqueueJobRequest(queue_name="reports", job_name="build", job_id="x1", unique=unique()),
            pb.EnqueueJobRequest(queue_name="reports", job_name="build", job_id="x2", unique=unique()),
            pb.EnqueueJobRequest(queue_name="reports", job_name="build", job_id="x3", unique=unique("other")),
        ]
    )
    results = service.jobs.EnqueueJobs(request).results
    assert [(result.job.job_id, result.created) for result in results] == [("x1", True), ("x1", False), ("x3", True)]
    again = service.jobs.EnqueueJobs(request).results
    assert [(result.job.job_id, result.created) for result in again] == [("x1", False), ("x1", False), ("x3", False)]
    assert row_counts(database)["queue_jobs"] == 2


def race(target: str, key: str) -> list[pb.EnqueueJobResponse]:
    """PRODUCERS clients, each on its own channel, enqueue the same unique job at once."""
    barrier = threading.Barrier(PRODUCERS)
    results: list[pb.EnqueueJobResponse | BaseException] = [None] * PRODUCERS  # type: ignore[list-item]

    def produce(index: int) -> None:
        with grpc.insecure_channel(target) as channel:
            jobs = job_service_pb2_grpc.JobServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            barrier.wait(timeout=30)
            try:
                results[index] = enqueue(jobs, job_id=f"{key}-producer-{index}", unique=unique(key))
            except BaseException as error:  # noqa: BLE001 - reported by the assertion below
                results[index] = error

    threads = [threading.Thread(target=produce, args=(index,)) for index in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failures = [result for result in results if not isinstance(result, pb.EnqueueJobResponse)]
    assert not failures, failures
    return results  # type: ignore[return-value]


def test_concurrent_producers_make_exactly_one_job(service, database):
    for round_number in range(3):
        results = race(service.target, f"race-{round_number}")
        created = [result for result in results if result.created]
        assert len(created) == 1, [(result.job.job_id, result.created) for result in results]
        assert {result.job.job_id for result in results} == {created[0].job.job_id}
    assert row_counts(database)["queue_jobs"] == 3


@pytest.fixture(params=BACKENDS)
def server_without_unique_index(request, tmp_path):
    """A real server over a throwaway database migrated to head, then stripped of the unique index."""
    with empty_database(request.param, tmp_path) as engine:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text(f"DROP INDEX {UNIQUE_SLOT_INDEX}"))
        url = engine.url.render_as_string(hide_password=False)
        server = QueueServer(make_config(url)).start()
        try:
            yield server
        finally:
            server.stop(0)


def test_without_the_unique_index_concurrent_producers_make_duplicates(server_without_unique_index):
    results = race(f"127.0.0.1:{server_without_unique_index.port}", "race")
    assert sum(result.created for result in results) > 1


def test_the_unique_index_is_what_holds_the_slot(database_url):
    """The index exists on the migrated schema and covers only jobs in their counted states."""
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            if database.engine.dialect.name == "postgresql":
                definition = connection.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": UNIQUE_SLOT_INDEX}
                ).scalar_one()
            else:
                definition = connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": UNIQUE_SLOT_INDEX}
                ).scalar_one()
    finally:
        database.dispose()
    assert "UNIQUE" in definition.upper() and "unique_states" in definition
