"""Read RPCs wait for no writer: while another connection holds a write open (on SQLite, the file's
one write lock), they answer at once, with what was committed before that write."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy.engine import make_url

from tests.integration.admin_helpers import dead_letter, enqueue

# Far below SQLite's busy timeout (30 s), which a read queued behind the write would wait out.
DEADLINE = 5.0


@contextmanager
def write_held_open(database_url: str, job_id: str) -> Iterator[None]:
    """Another connection renames the job and keeps its transaction open until the block ends."""
    rename = "UPDATE queue_jobs SET job_name = 'renamed' WHERE job_id = "
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        assert connection.execute(rename + "?", (job_id,)).rowcount == 1
    else:
        connection = psycopg2.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False))
        cursor = connection.cursor()
        cursor.execute(rename + "%s", (job_id,))
        assert cursor.rowcount == 1
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def test_read_rpcs_answer_while_a_write_is_held_open(service, database_url):
    enqueue(service, "held")
    entry_id = dead_letter(service, "dead", queue="sms")
    with write_held_open(database_url, "held"):
        job = service.jobs.GetJob(pb.GetJobRequest(job_id="held"), timeout=DEADLINE).job
        assert job.job_name == "send"  # the write in progress is not seen
        assert (
            service.admin.GetJobDetails(admin.GetJobDetailsRequest(job_id="held"), timeout=DEADLINE).job.job_name
            == "send"
        )
        listed = service.admin.ListJobs(admin.ListJobsRequest(queue_name="emails"), timeout=DEADLINE)
        assert [item.job_name for item in listed.jobs] == ["send"]
        statistics = service.admin.GetStatistics(admin.GetStatisticsRequest(), timeout=DEADLINE)
        assert statistics.totals.waiting_count == 1 and statistics.totals.dead_letter_count == 1
        queue = service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails"), timeout=DEADLINE)
        assert queue.queue.name == "emails"
        page = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(), timeout=DEADLINE)
        assert [entry.id for entry in page.entries] == [entry_id]
        entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id), timeout=DEADLINE)
        assert entry.job.job_id == "dead"
    # Once the other write ends (here, undone), reads and writes go on as before.
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="held"), timeout=DEADLINE).job.job_name == "send"
    enqueue(service, "after")


def test_a_snapshot_sees_one_state_throughout(database, database_url):
    """A commit made between two statements of one snapshot is not seen by the second."""

    def queues(repo) -> int:
        return repo.connection.exec_driver_sql("SELECT count(*) FROM queues").scalar_one()

    with database.snapshot() as repo:
        before = queues(repo)
        with database.transaction() as other:  # another connection, committed at once
            other.connection.exec_driver_sql(
                "INSERT INTO queues (name, paused, created_at, updated_at) "
                "VALUES ('committed-meanwhile', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        assert queues(repo) == before
    with database.snapshot() as repo:
        assert queues(repo) == before + 1
