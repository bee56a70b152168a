"""Long-polls wake for jobs made ready by another replica or process sharing the PostgreSQL
database (LISTEN/NOTIFY), not only at their next look; and again after the listening connection
was lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import create_engine, text

from queue_service import service_core
from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from queue_service.store.wakeups import CHANNEL
from tests.conftest import _truncate_postgres, make_config
from tests.integration.long_polls import (
    POLL_SECONDS,
    WOKEN_WITHIN,
    fail_with_retry_after,
    leased_job,
    long_poll,
    stub,
)
from tests.reliability.processes import wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(postgres_session_url) -> Iterator[tuple[QueueServer, QueueServer]]:
    _truncate_postgres(postgres_session_url)
    config = make_config(postgres_session_url, lifecycle=LifecycleSettings(lease_poll_interval=POLL_SECONDS))
    first = QueueServer(config).start()
    try:
        second = QueueServer(config).start()
        try:
            yield first, second
        finally:
            second.stop(0)
    finally:
        first.stop(0)


def listening_backends(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE query = :listen AND datname = current_database()"),
                    {"listen": f"LISTEN {CHANNEL}"},
                ).scalars()
            )
    finally:
        engine.dispose()


def test_a_long_poll_on_one_replica_gets_a_job_enqueued_on_another(replicas):
    waiting, enqueuing = replicas
    call = long_poll(waiting, "emails")

    stub(enqueuing).EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="e-1"))

    jobs = call.result(timeout=WOKEN_WITHIN).jobs
    assert [job.job_id for job in jobs] == ["e-1"]


def test_a_batch_enqueued_on_one_replica_wakes_one_long_poll_per_job_on_another(replicas):
    waiting, enqueuing = replicas
    calls = [long_poll(waiting, "emails") for _ in range(3)]

    stub(enqueuing).EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id=f"b-{index}") for index in range(3)]
        )
    )

    leased = [[job.job_id for job in call.result(timeout=WOKEN_WITHIN).jobs] for call in calls]
    assert sorted(job_id for jobs in leased for job_id in jobs) == ["b-0", "b-1", "b-2"]


def test_a_retry_decided_on_one_replica_reaches_a_long_poll_on_another_when_due(replicas):
    waiting, reporting = replicas
    jobs = stub(reporting)
    leased = leased_job(jobs, "emails", "r-1")
    call = long_poll(waiting, "emails")

    fail_with_retry_after(jobs, leased, 0.3)

    [retried] = call.result(timeout=WOKEN_WITHIN).jobs
    assert (retried.job_id, retried.attempt_number) == ("r-1", leased.attempt_number + 1)


def test_a_replica_whose_listening_connection_was_cut_hears_again(replicas, postgres_session_url):
    waiting, enqueuing = replicas
    wait_for(
        lambda: len(listening_backends(postgres_session_url)) == 2,
        timeout=WOKEN_WITHIN,
        interval=0.02,
        message="both replicas to listen",
    )
    cut = waiting.core.wakeups
    before = set(listening_backends(postgres_session_url))

    engine = create_engine(postgres_session_url)
    try:
        with engine.connect() as connection:
            # Every listening backend: the waiting replica's among them.
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
                {"pids": list(before)},
            )
            connection.commit()
    finally:
        engine.dispose()
    wait_for(
        lambda: len(set(listening_backends(postgres_session_url)) - before) == 2,
        timeout=WOKEN_WITHIN,
        interval=0.02,
        message="both replicas to listen again",
    )
    assert waiting.core.wakeups is cut

    call = long_poll(waiting, "emails")
    stub(enqueuing).EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="e-3"))
    assert [job.job_id for job in call.result(timeout=WOKEN_WITHIN).jobs] == ["e-3"]


def database_backends(url: str) -> int:
    """Connections to the test database other than the one asking."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def test_a_core_that_fails_to_start_leaves_no_thread_or_connection_behind(postgres_session_url, monkeypatch):
    _truncate_postgres(postgres_session_url)
    before = database_backends(postgres_session_url)

    def failing_part(*_args, **_kwargs):
        raise RuntimeError("a part of the core could not be made")

    # A step after the database check and before the wake-ups, as a configuration error would be.
    monkeypatch.setattr(service_core, "ScheduleManager", failing_part)
    with pytest.raises(RuntimeError, match="could not be made"):
        service_core.ServiceCore(make_config(postgres_session_url))

    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("wakeups-")]
    # The readiness check's pooled connection is closed with the engine.
    wait_for(lambda: database_backends(postgres_session_url) <= before, timeout=10, message="the engine's connections")
