"""PostgreSQL's prepared statements: a text run again is prepared on its connection and answers as
before; the cache is bounded, refuses nothing it cannot prepare, turns off by URL, and survives a
pooler that loses them."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import timedelta

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import event, text

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.store import prepared
from queue_service.store.database import Database
from queue_service.store.errors import StoreUnavailable
from queue_service.store.schema import metadata
from tests.conftest import _truncate_postgres, make_config

pytestmark = pytest.mark.postgres

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SentStatements:
    """The texts SQLAlchemy compiled, and what each was sent as (itself, or an EXECUTE)."""

    def __init__(self, engine) -> None:
        self.sent: list[tuple[str, str]] = []
        event.listen(engine, "after_cursor_execute", self._after)

    def _after(self, connection, _cursor, statement, _parameters, context, _executemany):
        # The context keeps the statement as compiled; `statement` is what the cursor was given.
        # A statement run on the driver's cursor (store/direct.py) has no context: its compiled
        # text is the one the connection's cache prepared as that EXECUTE, or the text itself.
        if context is not None:
            compiled = context.statement
        else:
            held = connection.info.get(prepared._INFO_KEY)
            texts = held.prepared.items() if held is not None else ()
            compiled = next((text for text, form in texts if form.execute == statement), statement)
        self.sent.append((compiled, statement))

    def executed(self) -> list[str]:
        return [compiled for compiled, sent in self.sent if sent.startswith("EXECUTE ")]


@pytest.fixture
def single_connection(postgres_session_url):
    """A store with one pooled connection, so that every statement meets the same cache."""
    db = Database(postgres_session_url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


def read_queue_names(db: Database) -> list[str]:
    with db.transaction() as repo:
        return list(
            repo.connection.execute(
                text("SELECT name FROM queues WHERE name LIKE :prefix ORDER BY name"), {"prefix": "p-%"}
            )
            .scalars()
            .all()
        )


def server_prepared_names(db: Database) -> list[str]:
    with db.transaction() as repo:
        return list(repo.connection.execute(text("SELECT name FROM pg_prepared_statements ORDER BY name")).scalars())


def test_a_text_run_twice_is_prepared_at_the_next_checkout_and_answers_the_same(
    single_connection, postgres_session_url
):
    _truncate_postgres(postgres_session_url)
    with single_connection.transaction() as repo:
        for name in ("p-b", "p-a", "p-c"):
            repo.connection.execute(
                text("INSERT INTO queues (name, paused, created_at, updated_at) VALUES (:name, false, now(), now())"),
                {"name": name},
            )
    sent = SentStatements(single_connection.engine)

    answers = [read_queue_names(single_connection) for _ in range(4)]

    assert answers == [["p-a", "p-b", "p-c"]] * 4
    read = [compiled for compiled, _ in sent.sent if compiled.startswith("SELECT name FROM queues")]
    assert len(read) == 4
    # Sent as text twice; prepared when the connection was next checked out; then run by EXECUTE.
    assert [sent_as.startswith("EXECUTE ") for compiled, sent_as in sent.sent if compiled in read] == [
        False,
        False,
        True,
        True,
    ]
    assert any(name.startswith("queue_service_") for name in server_prepared_names(single_connection))


def test_a_connection_keeps_at_most_its_capacity(postgres_session_url):
    db = Database(f"{postgres_session_url}?prepared_statement_cache_size=2", pool_size=1, max_overflow=0)
    try:
        for number in range(5):
            for _ in range(3):
                with db.transaction() as repo:
                    assert (
                        repo.connection.execute(text(f"SELECT {number} + :one"), {"one": 1}).scalar_one() == number + 1
                    )
        prepared_here = [name for name in server_prepared_names(db) if name.startswith("queue_service_")]
        assert 1 <= len(prepared_here) <= 2
    finally:
        db.dispose()


def test_a_text_the_server_cannot_prepare_runs_as_text_and_harms_nothing(single_connection):
    sent = SentStatements(single_connection.engine)
    for value in ("x", None, "y", None):
        with single_connection.transaction() as repo:
            # Nothing fixes the type of the parameter: PREPARE refuses it, the plain statement runs.
            is_null = repo.connection.execute(text("SELECT :value IS NULL"), {"value": value}).scalar_one()
            assert is_null is (value is None)
            assert repo.connection.execute(text("SELECT 41 + :one"), {"one": 1}).scalar_one() == 42
    assert not [compiled for compiled in sent.executed() if "IS NULL" in compiled]
    assert any("41 +" in compiled for compiled in sent.executed())


def test_turned_off_in_the_url_nothing_is_prepared(postgres_session_url):
    db = Database(f"{postgres_session_url}?prepared_statement_cache_size=0", pool_size=1, max_overflow=0)
    try:
        sent = SentStatements(db.engine)
        for _ in range(5):
            read_queue_names(db)
        assert sent.sent and not sent.executed()
        assert not [name for name in server_prepared_names(db) if name.startswith("queue_service_")]
    finally:
        db.dispose()


def test_statements_lost_by_a_pooler_fail_one_call_as_retryable_then_run_as_text(single_connection, caplog):
    for _ in range(3):
        read_queue_names(single_connection)
    sent = SentStatements(single_connection.engine)
    read_queue_names(single_connection)
    assert sent.executed(), "the read should be prepared by now"
    # What a pooler in transaction mode does: the next transaction meets a server connection
    # that never saw the PREPARE.
    with single_connection.engine.connect() as connection:
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()

    with caplog.at_level(logging.WARNING, logger=prepared.__name__):
        with pytest.raises(StoreUnavailable):
            read_queue_names(single_connection)
    assert "prepared_statement_cache_size=0" in caplog.text

    sent.sent.clear()
    for _ in range(4):
        assert read_queue_names(single_connection) is not None
    assert sent.sent and not sent.executed()


def test_a_column_type_changed_by_a_migration_fails_one_call_as_retryable_then_prepares_anew(
    single_connection, postgres_session_url, caplog
):
    with single_connection.transaction() as repo:
        repo.connection.execute(text("DROP TABLE IF EXISTS prepared_probe"))
        repo.connection.execute(text("CREATE TABLE prepared_probe (amount integer)"))
        repo.connection.execute(text("INSERT INTO prepared_probe VALUES (7)"))

    def read() -> int:
        with single_connection.transaction() as repo:
            return repo.connection.execute(
                text("SELECT amount FROM prepared_probe WHERE amount > :least"), {"least": 0}
            ).scalar_one()

    sent = SentStatements(single_connection.engine)
    try:
        assert [read() for _ in range(4)] == [7] * 4
        assert sent.executed(), "the read should be prepared by now"
        # A migration run from elsewhere while this process serves.
        other = Database(postgres_session_url, pool_size=1, max_overflow=0)
        with other.transaction() as repo:
            repo.connection.execute(text("ALTER TABLE prepared_probe ALTER COLUMN amount TYPE bigint"))
        other.dispose()

        with caplog.at_level(logging.WARNING, logger=prepared.__name__):
            with pytest.raises(StoreUnavailable):
                read()
        assert "schema changed under a prepared statement" in caplog.text

        sent.sent.clear()
        assert [read() for _ in range(4)] == [7] * 4
        assert sent.executed(), "prepared statements stay on, and the read is prepared anew"
    finally:
        with single_connection.transaction() as repo:
            repo.connection.execute(text("DROP TABLE IF EXISTS prepared_probe"))


# The same calls through a real server, with statements prepared from their second run and with
# none: every reply and every row written must be the same.


def run_lifecycle(url: str) -> tuple[list[dict], dict[str, list[str]], SentStatements]:
    clock = FakeClock()
    server = QueueServer(make_config(url), clock=clock, sleep=clock.advance).start()
    sent = SentStatements(server.database.engine)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    replies: list[dict] = []

    def keep(reply) -> None:
        replies.append(MessageToDict(reply, preserving_proto_field_name=True))

    try:
        keep(
            jobs.EnqueueJobs(
                pb.EnqueueJobsRequest(
                    jobs=[
                        pb.EnqueueJobRequest(queue_name="alpha", job_name="send", job_id=f"a-{n}", priority=n % 3)
                        for n in range(24)
                    ]
                )
            )
        )
        for n in range(12):
            keep(jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="beta", job_name="sync", job_id=f"b-{n}")))
        # Jobs run by another queue system, reported only: each start creates its job.
        for n in range(8):
            started = jobs.TrackStart(
                pb.TrackStartRequest(job_id=f"x-{n}", queue_name="external", job_name="mail", worker_id="w")
            )
            keep(started)
            keep(
                jobs.TrackFailure(
                    pb.TrackFailureRequest(
                        job_id=f"x-{n}",
                        attempt_number=started.job.attempt_number,
                        error=job_pb2.JobError(message="smtp"),
                    )
                )
            )
        for _round in range(4):
            while True:
                leased = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["alpha", "beta"], worker_id="w", max_jobs=5))
                keep(leased)
                if not leased.jobs:
                    break
                for number, job in enumerate(leased.jobs):
                    if number % 4 == 0:
                        keep(
                            jobs.TrackCompletion(
                                pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number)
                            )
                        )
                    else:
                        keep(
                            jobs.TrackFailure(
                                pb.TrackFailureRequest(
                                    job_id=job.job_id,
                                    attempt_number=job.attempt_number,
                                    error=job_pb2.JobError(message=f"boom {number}", type="IOError"),
                                    non_retryable=number % 4 == 3,
                                )
                            )
                        )
            clock.advance(timedelta(minutes=10))
            server.recovery.run_once()
        for job_id in [f"a-{n}" for n in range(24)] + [f"b-{n}" for n in range(12)]:
            keep(jobs.GetJob(pb.GetJobRequest(job_id=job_id)))
        entries = admin.ListDeadLetterJobs(admin_pb.ListDeadLetterJobsRequest(page_size=100))
        # Entries of one moment and priority come in the order of their random ids.
        entries.entries.sort(key=lambda entry: entry.job_id)
        keep(entries)
        keep(admin.ListRetryLog(admin_pb.ListRetryLogRequest(page_size=200)))
        keep(admin.GetStatistics(admin_pb.GetStatisticsRequest()))
    finally:
        channel.close()
        server.stop(0)
    rows = {}
    with Database(url, pool_size=1, max_overflow=0).engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name in ("queue_recovery_runs", "queue_leases"):  # name the sweeping node, which differs
                continue
            # Sorted once random ids are masked: the same rows in either run, whatever their ids.
            rows[table.name] = sorted(without_uuids(tuple(row)) for row in connection.execute(table.select()))
    return replies, rows, sent


def without_uuids(value):
    return UUID.sub("<uuid>", repr(value))


def test_prepared_statements_answer_and_write_exactly_what_plain_ones_do(postgres_session_url, monkeypatch):
    _truncate_postgres(postgres_session_url)
    plain_replies, plain_rows, plain_sent = run_lifecycle(f"{postgres_session_url}?prepared_statement_cache_size=0")
    _truncate_postgres(postgres_session_url)
    monkeypatch.setattr(prepared, "PREPARE_AFTER", 1)
    replies, rows, sent = run_lifecycle(postgres_session_url)

    assert not plain_sent.executed()
    assert without_uuids(replies) == without_uuids(plain_replies)
    assert rows == plain_rows
    assert any(rows.values())
    # Every text sent more than a few times went as an EXECUTE from some point on.
    counts = Counter(compiled for compiled, _ in sent.sent)
    executed = set(sent.executed())
    never = [compiled for compiled, count in counts.items() if count >= 12 and compiled not in executed]
    assert not [compiled for compiled in never if prepared.PREPARABLE.match(compiled)], never
    assert len(sent.executed()) > len(sent.sent) / 2
