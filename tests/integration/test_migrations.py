"""Alembic migrations on both backends: head from empty equals schema.py, down to base and up again, the views."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text, update

from queue_service.clock import FakeClock
from queue_service.core.jobs import JobManager, JobSpec, ReportedError
from queue_service.core.unique import UniqueOptions
from queue_service.store import migrate
from queue_service.store.database import Database
from queue_service.store.schema import dead_letter_queue, metadata
from tests.conftest import BACKENDS
from tests.databases import empty_database

pytestmark = pytest.mark.slow


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def empty_engine(backend_name, tmp_path) -> Iterator[Engine]:
    with empty_database(backend_name, tmp_path) as engine:
        yield engine


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = migrate.alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


# What the database holds, in a form two databases can be compared by.


def _normalise(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip()


def _named_clauses(table_sql: str, keyword: str) -> set[tuple[str, str]]:
    """`CONSTRAINT name <keyword> (...)` clauses of an SQLite CREATE TABLE, with balanced parentheses."""
    found = set()
    for match in re.finditer(rf"CONSTRAINT (\w+) {keyword} \(", table_sql):
        depth, position = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(table_sql[position], 0)
            position += 1
        found.add((match.group(1), _normalise(table_sql[match.end() : position - 1])))
    return found


def catalog(engine: Engine) -> dict[str, object]:
    """Tables, columns, indexes (with order and predicates) and constraints, as the database reports them."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            columns = connection.execute(
                text(
                    "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default"
                    " FROM information_schema.columns WHERE table_schema = 'public'"
                    " AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public')"
                    " AND table_name <> 'alembic_version'"
                )
            ).all()
            indexes = connection.execute(
                text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                    " AND tablename <> 'alembic_version'"
                )
            ).all()
            constraints = connection.execute(
                text(
                    "SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)"
                    " FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid"
                    " JOIN pg_namespace ns ON ns.oid = rel.relnamespace"
                    " WHERE ns.nspname = 'public' AND rel.relname <> 'alembic_version'"
                )
            ).all()
            return {
                "columns": {tuple(row) for row in columns},
                "indexes": {tuple(row) for row in indexes},
                "constraints": {tuple(row) for row in constraints},
            }
        tables = dict(
            connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version'"
                )
            ).all()
        )
        columns = {
            (table, *row[1:6])
            for table in tables
            for row in connection.exec_driver_sql(f"PRAGMA table_xinfo('{table}')").all()
        }
        indexes = set()
        for table in tables:
            for index in connection.exec_driver_sql(f"PRAGMA index_list('{table}')").all():
                name, unique, origin, partial = index[1], index[2], index[3], index[4]
                keys = tuple(
                    (row[2], row[3])  # column name, descending
                    for row in connection.exec_driver_sql(f"PRAGMA index_xinfo('{name}')").all()
                    if row[5]  # key columns only
                )
                sql = connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"), {"name": name}
                ).scalar()
                # Automatic indexes of UNIQUE constraints are named by position; name them by their columns.
                label = name if sql is not None else f"{table}:auto:{keys}"
                indexes.add((table, label, unique, origin, partial, keys, _normalise(sql) if sql else None))
        constraints = {
            (table, kind, *clause)
            for table, sql in tables.items()
            for kind in ("CHECK", "UNIQUE", "PRIMARY KEY")
            for clause in _named_clauses(sql, kind)
        }
        return {"tables": set(tables), "columns": columns, "indexes": indexes, "constraints": constraints}


def differences(expected: dict, actual: dict) -> dict[str, dict[str, list]]:
    return {
        key: {
            "only in schema.py": sorted(map(str, expected[key] - actual[key])),
            "only in migrations": sorted(map(str, actual[key] - expected[key])),
        }
        for key in expected
        if expected[key] != actual[key]
    }


# The tests


def test_upgrade_from_empty_reaches_head(empty_engine):
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert set(metadata.tables) <= tables
    views = set(inspect(empty_engine).get_view_names())
    assert {"queue_statistics", "dead_letter_queue_summary"} <= views


def test_autogenerate_finds_no_difference_from_schema_py(empty_engine):
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, metadata)
    if empty_engine.dialect.name == "sqlite":
        # SQLite reflection drops DESC from index columns, so an index with `priority DESC` always
        # looks removed and re-added; catalog() below compares those indexes exactly instead.
        textual = {
            index.name
            for table in metadata.tables.values()
            for index in table.indexes
            if any(not hasattr(element, "table") for element in index.expressions)
        }
        diff = [
            change
            for change in diff
            if not (
                isinstance(change, tuple) and change[0] in ("add_index", "remove_index") and change[1].name in textual
            )
        ]
    assert diff == [], "schema.py and the migrations disagree; add a revision (or fix schema.py)"


def test_migrated_catalog_equals_schema_py_created_catalog(backend_name, tmp_path):
    """Beyond autogenerate: check constraints, index order, DESC and partial predicates too."""
    with empty_database(backend_name, tmp_path) as migrated, empty_database(backend_name, tmp_path) as created:
        migrate.upgrade(migrated)
        metadata.create_all(created)
        assert differences(catalog(created), catalog(migrated)) == {}


def test_downgrade_to_base_and_upgrade_again(empty_engine):
    migrate.upgrade(empty_engine)
    first = catalog(empty_engine)
    downgrade(empty_engine, "base")
    assert migrate.current_revision(empty_engine) is None
    inspector = inspect(empty_engine)
    assert set(inspector.get_table_names()) <= {"alembic_version"}
    assert inspector.get_view_names() == []
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision(empty_engine)
    assert differences(first, catalog(empty_engine)) == {}


def test_each_revision_downgrades_and_upgrades_one_step(empty_engine):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(empty_engine))
    revisions = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(empty_engine, revision)
        previous = catalog(empty_engine)
        downgrade(empty_engine, "-1")
        migrate.upgrade(empty_engine, revision)
        assert differences(previous, catalog(empty_engine)) == {}, f"{revision} does not downgrade cleanly"


SEED_STATISTICS_COLUMNS = [
    "queue_name",
    "waiting_count",
    "active_count",
    "completed_count",
    "failed_count",
    "retryable_count",
]
SEED_SUMMARY_COLUMNS = ["queue_name", "total_failed_jobs", "pending_recovery", "recovered", "permanently_failed"]


def test_views_have_the_seed_columns_and_count_correctly(empty_engine):
    migrate.upgrade(empty_engine)
    database = Database(empty_engine.url)
    # The views compare with the database's own clock, so the fake clock runs ten minutes behind it.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))
    jobs = JobManager(database, clock)
    try:

        def enqueue(queue, *ids):
            jobs.enqueue([JobSpec(queue_name=queue, job_name="n", job_id=job_id) for job_id in ids])

        enqueue("emails", "completed", "due-retry", "later-retry", "dead-1", "dead-2", "dead-3", "active")
        leased = {job.record.job_id for job in jobs.lease(["emails"], max_jobs=10)}
        assert len(leased) == 7
        enqueue("emails", "waiting-1", "waiting-2")
        enqueue("sms", "sms-waiting")
        jobs.complete("completed", 1)
        jobs.fail("due-retry", 1, ReportedError("boom"))  # due 5 s later: long past for the database
        jobs.fail("later-retry", 1, ReportedError("boom"), retry_after=timedelta(hours=1))
        for job_id in ("dead-1", "dead-2", "dead-3"):
            jobs.fail(job_id, 1, ReportedError("fatal"), non_retryable=True)
        with empty_engine.begin() as connection:
            for job_id, status in (("dead-2", "recovered"), ("dead-3", "permanently_failed")):
                connection.execute(
                    update(dead_letter_queue).where(dead_letter_queue.c.job_id == job_id).values(recovery_status=status)
                )

        with empty_engine.connect() as connection:
            statistics = connection.execute(text("SELECT * FROM queue_statistics ORDER BY queue_name"))
            assert set(SEED_STATISTICS_COLUMNS) <= set(statistics.keys())
            rows = [tuple(row._mapping[column] for column in SEED_STATISTICS_COLUMNS) for row in statistics]
            summary = connection.execute(text("SELECT * FROM dead_letter_queue_summary ORDER BY queue_name"))
            assert set(SEED_SUMMARY_COLUMNS) <= set(summary.keys())
            summary_rows = [tuple(row._mapping[column] for column in SEED_SUMMARY_COLUMNS) for row in summary]
        # queue, waiting, active, completed, failed, retryable
        assert rows == [("emails", 2, 1, 1, 2, 1), ("sms", 1, 0, 0, 0, 0)]
        # queue, total, pending, recovered, permanently failed
        assert summary_rows == [("emails", 3, 1, 1, 1)]
    finally:
        database.dispose()


def test_unique_jobs_migration_keeps_the_jobs_both_ways(empty_engine):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(empty_engine))
    before_unique = script.get_revision("0010_unique_jobs").down_revision
    migrate.upgrade(empty_engine, before_unique)
    now = datetime.now(UTC)
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, run_at, created_at, updated_at)"
                " VALUES ('before', 'emails', 'send', '{}', 'waiting', :now, :now, :now)"
            ),
            {"now": now},
        )
    migrate.upgrade(empty_engine)
    database = Database(empty_engine.url)
    try:
        jobs = JobManager(database, FakeClock(now))
        spec = JobSpec(queue_name="emails", job_name="send", job_id="unique", unique=UniqueOptions("k"))
        assert [result.created for result in jobs.enqueue([spec, spec])] == [True, False]
        duplicate = JobSpec(queue_name="emails", job_name="send", job_id="other", unique=UniqueOptions("k"))
        assert jobs.enqueue([duplicate])[0].job.record.job_id == "unique"
    finally:
        database.dispose()
    with empty_engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT job_id, unique_key FROM queue_jobs")).all())
    assert rows == {"before": None, "unique": "k"}
    downgrade(empty_engine, before_unique)
    inspector = inspect(empty_engine)
    assert not {"unique_key", "unique_slot", "unique_states"} & {c["name"] for c in inspector.get_columns("queue_jobs")}
    assert "ix_queue_jobs_unique_slot" not in {index["name"] for index in inspector.get_indexes("queue_jobs")}
    with empty_engine.connect() as connection:
        assert sorted(connection.execute(text("SELECT job_id FROM queue_jobs")).scalars()) == ["before", "unique"]
    migrate.upgrade(empty_engine)
    assert "ix_queue_jobs_unique_slot" in {index["name"] for index in inspect(empty_engine).get_indexes("queue_jobs")}


def test_retry_rules_revision_keeps_deadline_deaths_readable_when_downgraded(empty_engine):
    from sqlalchemy.exc import IntegrityError

    from queue_service.core.retry import PolicyOverride

    migrate.upgrade(empty_engine)
    database = Database(empty_engine.url)
    clock = FakeClock()
    jobs = JobManager(database, clock)
    try:
        policy = PolicyOverride(max_retries=10, max_retry_duration=timedelta(minutes=1))
        jobs.enqueue([JobSpec(queue_name="emails", job_name="n", job_id="late", retry_policy=policy)])
        jobs.lease(["emails"])
        jobs.fail("late", 1, ReportedError("slow", "TimeoutError"))
        clock.advance(timedelta(minutes=2))
        jobs.lease(["emails"])
        outcome = jobs.fail("late", 2, ReportedError("slow", "TimeoutError"))
        assert outcome.dead_letter is not None
    finally:
        database.dispose()
    reason = text("SELECT death_reason FROM dead_letter_queue WHERE job_id = 'late'")
    with empty_engine.connect() as connection:
        assert connection.execute(reason).scalar_one() == "retry_deadline_exceeded"

    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(empty_engine))
    downgrade(empty_engine, script.get_revision("0012_retry_rules").down_revision)
    with empty_engine.connect() as connection:
        assert connection.execute(reason).scalar_one() == "retries_exhausted"
        logged = text("SELECT death_reason FROM queue_retry_log WHERE job_id = 'late' AND decision = 'dead_letter'")
        assert connection.execute(logged).scalar_one() == "retries_exhausted"
    assert {"retry_rule", "first_failed_at"}.isdisjoint(
        c["name"] for c in inspect(empty_engine).get_columns("queue_jobs")
    )
    deadline_again = text("UPDATE dead_letter_queue SET death_reason = 'retry_deadline_exceeded'")
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(deadline_again)

    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(deadline_again)
        assert connection.execute(reason).scalar_one() == "retry_deadline_exceeded"
