"""Statements run on the driver's cursor (store/direct.py) answer as SQLAlchemy's execution does:
the same rows and column names, values bound and rows read through the same types, the same
errors; on PostgreSQL they go through the connection's prepared-statement cache, and a connection
the server dropped is discarded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, column, event, exc, select, text, update

from queue_service.clock import FakeClock
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.store.database import Database
from queue_service.store.direct import DirectStatement
from queue_service.store.errors import StoreUnavailable
from queue_service.store.jobs import JOB_FOR_FAILURE_UNLOCKED
from queue_service.store.schema import UTCDateTime, queue_jobs
from tests.conftest import _truncate_postgres

TOKYO = timezone(timedelta(hours=9))
JOB_BY_ID = select(queue_jobs).where(queue_jobs.c.job_id == bindparam("wanted"))


def leased_job(database: Database) -> str:
    """A job with a payload, a policy and several times set: leased once, so that it has a lease."""
    jobs = JobManager(database, FakeClock())
    jobs.enqueue(
        [JobSpec("mail", "send", {"to": "a@example.com", "n": [1, 2]}, job_id="direct-1", priority=3)],
    )
    [view] = jobs.lease(["mail"], worker_id="w-1", may_wait=False)
    return view.record.job_id


def test_rows_and_names_are_sqlalchemys(database):
    job_id = leased_job(database)
    direct = DirectStatement(JOB_BY_ID)
    with database.transaction() as repo:
        expected = repo.connection.execute(JOB_BY_ID, {"wanted": job_id})
        names, rows = tuple(expected.keys()), [tuple(row) for row in expected]
        got = direct.rows(repo.connection, {"wanted": job_id})
        missing = direct.rows(repo.connection, {"wanted": "no-such-job"})
    assert got == rows
    assert len(got) == 1 and missing == []
    assert direct.keys(database.engine.dialect) == names
    # The times went through the column type: aware, in UTC, as the rest of the service reads them.
    times = [value for value in got[0] if isinstance(value, datetime)]
    assert times and all(value.tzinfo is UTC for value in times)
    assert got[0][names.index("job_data")] == {"to": "a@example.com", "n": [1, 2]}


def test_a_write_returns_its_rows_as_sqlalchemy_reads_them(database):
    job_id = leased_job(database)
    # A constant of the statement's own (priority), a document and a time bound, the whole row returned.
    write = (
        update(queue_jobs)
        .where(queue_jobs.c.job_id == bindparam("wanted"))
        .values(priority=5, result=bindparam("outcome", type_=queue_jobs.c.result.type), updated_at=bindparam("now"))
        .returning(*queue_jobs.c)
    )
    values = {"wanted": job_id, "outcome": {"sent": True}, "now": datetime(2026, 3, 29, 10, 30, tzinfo=TOKYO)}
    with database.transaction() as repo:
        got = DirectStatement(write).rows(repo.connection, values)
        expected = [tuple(row) for row in repo.connection.execute(JOB_BY_ID, {"wanted": job_id})]
    assert got == expected
    row = dict(zip(DirectStatement(write).keys(database.engine.dialect), got[0]))
    assert row["priority"] == 5 and row["result"] == {"sent": True}
    assert row["updated_at"] == values["now"] and row["updated_at"].tzinfo is UTC


def test_values_are_bound_through_their_types(database):
    # A time given in another zone is bound as the same instant, as SQLAlchemy binds it.
    statement = text("SELECT :moment AS moment").bindparams(bindparam("moment", type_=UTCDateTime()))
    statement = statement.columns(column("moment", UTCDateTime()))
    moment = datetime(2026, 3, 29, 10, 30, 15, 123456, tzinfo=TOKYO)
    with database.transaction() as repo:
        expected = repo.connection.execute(statement, {"moment": moment}).scalar_one()
        [(got,)] = DirectStatement(statement).rows(repo.connection, {"moment": moment})
    assert got == expected == moment
    assert got.tzinfo is UTC
    # The bound value itself, as the database received it (SQLite: naive UTC text).
    as_text = text("SELECT CAST(:moment AS TEXT)").bindparams(bindparam("moment", type_=UTCDateTime()))
    with database.transaction() as repo:
        expected_text = repo.connection.execute(as_text, {"moment": moment}).scalar_one()
        [(got_text,)] = DirectStatement(as_text).rows(repo.connection, {"moment": moment})
    assert got_text == expected_text


def test_a_value_its_type_refuses_fails_as_sqlalchemy_fails_it(database):
    statement = text("SELECT :moment").bindparams(bindparam("moment", type_=UTCDateTime()))
    naive = datetime(2026, 3, 29, 1, 30)
    with database.transaction() as repo:
        with pytest.raises(exc.StatementError) as expected:
            repo.connection.execute(statement, {"moment": naive})
    with database.transaction() as repo:
        with pytest.raises(exc.StatementError) as got:
            DirectStatement(statement).rows(repo.connection, {"moment": naive})
    assert isinstance(got.value.orig, ValueError) and isinstance(expected.value.orig, ValueError)


def test_a_write_with_no_rows_back_returns_none_and_commits_with_its_transaction(database):
    job_id = leased_job(database)
    update = DirectStatement(text("UPDATE queue_jobs SET priority = :priority WHERE job_id = :wanted"))
    with database.transaction() as repo:
        assert update.rows(repo.connection, {"priority": 9, "wanted": job_id}) == []
    with database.transaction() as repo:
        assert repo.connection.execute(JOB_BY_ID, {"wanted": job_id}).one().priority == 9


def test_a_driver_error_is_sqlalchemys_error_and_undoes_its_transaction(database):
    job_id = leased_job(database)
    update = DirectStatement(text("UPDATE queue_jobs SET priority = :priority WHERE job_id = :wanted"))
    duplicate = DirectStatement(text("UPDATE queue_jobs SET job_id = :taken WHERE job_id = :wanted"))
    JobManager(database, FakeClock()).enqueue([JobSpec("mail", "send", job_id="direct-2")])
    with pytest.raises(exc.IntegrityError) as raised:
        with database.transaction() as repo:
            update.rows(repo.connection, {"priority": 7, "wanted": job_id})
            duplicate.rows(repo.connection, {"taken": "direct-2", "wanted": job_id})
    assert "[SQL parameters hidden" in str(raised.value)  # as the engine's own statements hide them
    with database.transaction() as repo:
        assert repo.connection.execute(JOB_BY_ID, {"wanted": job_id}).one().priority == 3


def test_expanding_parameters_are_refused(database):
    statement = select(queue_jobs.c.id).where(queue_jobs.c.job_id.in_(bindparam("ids", expanding=True)))
    with database.transaction() as repo:
        with pytest.raises(ValueError, match="expanding"):
            DirectStatement(statement).rows(repo.connection, {"ids": ["a"]})


@pytest.mark.postgres
def test_on_postgresql_it_is_prepared_like_any_statement(postgres_session_url):
    database = Database(postgres_session_url, pool_size=1, max_overflow=0)
    sent: list[str] = []
    event.listen(database.engine, "after_cursor_execute", lambda _c, _cur, statement, *_rest: sent.append(statement))
    try:
        _truncate_postgres(postgres_session_url)
        job_id = leased_job(database)
        direct = DirectStatement(JOB_FOR_FAILURE_UNLOCKED)
        answers = []
        for _ in range(4):
            sent.clear()
            with database.statements_alone() as repo:
                answers.append(direct.rows(repo.connection, {"failing_job_id": job_id}))
        last_sent = list(sent)
        with database.transaction() as repo:
            held = repo.connection.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    finally:
        database.dispose()
    assert all(answer == answers[0] for answer in answers) and len(answers[0]) == 1
    # Sent as text twice, prepared at the next checkout, then run as an EXECUTE.
    assert len(last_sent) == 1 and last_sent[0].startswith("EXECUTE queue_service_")
    assert any("queue_retry_policy" in statement for statement in held)


@pytest.mark.postgres
def test_on_postgresql_a_dropped_connection_is_unavailable_then_replaced(postgres_session_url):
    database = Database(postgres_session_url, pool_size=1, max_overflow=0)
    direct = DirectStatement(text("SELECT pg_backend_pid() AS pid").columns(column("pid")))
    try:
        with database.statements_alone() as repo:
            [(pid,)] = direct.rows(repo.connection, {})
        other = Database(postgres_session_url, pool_size=1, max_overflow=0)
        with other.statements_alone() as repo:
            repo.connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        other.dispose()
        with pytest.raises(StoreUnavailable):
            with database.statements_alone() as repo:
                direct.rows(repo.connection, {})
        with database.statements_alone() as repo:
            [(new_pid,)] = direct.rows(repo.connection, {})
    finally:
        database.dispose()
    assert new_pid != pid
