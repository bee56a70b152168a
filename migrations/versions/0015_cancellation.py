"""Job cancellation: the CANCELLED state, the cancel request of a running job, and its activity count.

Revision ID: 0015_cancellation
Revises: 0014_retry_breaker
Create Date: 2026-12-05

queue_jobs.state may be 'cancelled'; queue_jobs.cancel_requested_at marks an ACTIVE job whose run
was asked to stop. queue_activity counts "cancelled" (a job entered CANCELLED) with the same
triggers as the other kinds (0005_queue_activity); the counters of 0002_admin_audit count any
state already.

The check constraints are replaced in place: PostgreSQL drops and adds them; SQLite has no
statement for it, so the table definitions are edited as 0004_check_constraint_names does (a
widened CHECK leaves the stored rows valid). A downgrade refuses while CANCELLED jobs exist, since
the older schema has no state for them: clean them first (CleanQueue with state CANCELLED).
"""

import re

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0015_cancellation"
down_revision = "0014_retry_breaker"
branch_labels = None
depends_on = None

OLD_STATES = ("waiting", "active", "completed", "failed", "dead_letter")
NEW_STATES = (*OLD_STATES, "cancelled")
OLD_ACTIVITIES = ("completed", "failed", "retried", "dead_lettered")
NEW_ACTIVITIES = (*OLD_ACTIVITIES, "cancelled")
BUCKET_SECONDS = (300, 3600)

# activity -> the condition on a state change (old state o, new state n) that counts it; the first
# four as 0005_queue_activity defines them.
ACTIVITIES = {
    "completed": "{n}.state = 'completed' AND {o}.state <> 'completed'",
    "failed": "{o}.state = 'active' AND {n}.state IN ('failed', 'dead_letter')",
    "retried": "({o}.state = 'active' AND {n}.state = 'failed') OR ({o}.state = 'dead_letter' AND {n}.state = 'waiting')",
    "dead_lettered": "{n}.state = 'dead_letter' AND {o}.state <> 'dead_letter'",
    "cancelled": "{n}.state = 'cancelled' AND {o}.state <> 'cancelled'",
}

POSTGRES_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION queue_jobs_activity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    FOR change IN
        SELECT queue_name, seconds, bucket_start, activity, count(*) AS amount FROM (
            SELECT n.queue_name, r.seconds,
                   to_timestamp(floor(extract(epoch FROM n.updated_at) / r.seconds) * r.seconds) AS bucket_start,
                   unnest(ARRAY[{cases}]) AS activity
            FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id CROSS JOIN (VALUES {resolutions}) AS r(seconds)
            WHERE n.state <> o.state
        ) AS changes
        WHERE activity IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    LOOP
        PERFORM queue_activity_add(change.queue_name, change.seconds, change.bucket_start, change.activity, change.amount);
    END LOOP;
    RETURN NULL;
END
$$
"""

SQLITE_BUCKET = (
    "datetime((CAST(strftime('%s', NEW.updated_at) AS INTEGER) / {seconds}) * {seconds}, 'unixepoch') || '.000000'"
)

SQLITE_ADD = """
    INSERT INTO queue_activity (queue_name, bucket_seconds, bucket_start, activity, amount)
    SELECT NEW.queue_name, {seconds}, {bucket}, '{activity}', 0
    WHERE NOT EXISTS (
        SELECT 1 FROM queue_activity
        WHERE queue_name = NEW.queue_name AND bucket_seconds = {seconds} AND bucket_start = {bucket}
          AND activity = '{activity}'
    );
    UPDATE queue_activity SET amount = amount + 1
    WHERE queue_name = NEW.queue_name AND bucket_seconds = {seconds} AND bucket_start = {bucket}
      AND activity = '{activity}';
"""

SQLITE_TRIGGER = """
CREATE TRIGGER queue_jobs_activity_{activity} AFTER UPDATE OF state ON queue_jobs
WHEN {condition} BEGIN{adds}END
"""


def _in(column: str, values: tuple[str, ...]) -> str:
    # The form schema.py writes, so that a migrated database matches one created from it.
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _set_checks(checks: dict[tuple[str, str], str]) -> None:
    """Replace each (table, constraint name) check with the given condition."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for (table, name), condition in checks.items():
            op.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
            op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" CHECK ({condition})')
        return
    changed = {}
    for (table, name), condition in checks.items():
        sql = (
            changed.get(table)
            or bind.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table"), {"table": table}
            ).scalar_one()
        )
        match = re.search(rf"CONSTRAINT {name} CHECK \(", sql)
        if match is None:
            raise RuntimeError(f"check constraint {name} not found in the definition of {table}")
        depth, position = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[position], 0)
            position += 1
        changed[table] = sql[: match.end()] + condition + sql[position - 1 :]
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, sql in changed.items():
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :table"),
            {"sql": sql, "table": table},
        )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    # Reading the tables makes SQLite parse the edited definitions now, failing the migration if one is wrong.
    for table in changed:
        bind.exec_driver_sql(f'SELECT * FROM "{table}" LIMIT 0').all()


def _postgres_count_function(activities: tuple[str, ...]) -> str:
    cases = ", ".join(
        f"CASE WHEN {ACTIVITIES[activity].format(n='n', o='o')} THEN '{activity}' END" for activity in activities
    )
    resolutions = ", ".join(f"({seconds})" for seconds in BUCKET_SECONDS)
    return POSTGRES_COUNT_FUNCTION.format(resolutions=resolutions, cases=cases)


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy queue_jobs on SQLite and drop its counter triggers.
    op.add_column("queue_jobs", sa.Column("cancel_requested_at", UTCDateTime(), nullable=True))
    _set_checks(
        {
            ("queue_jobs", "ck_queue_jobs_state_valid"): _in("state", NEW_STATES),
            ("queue_activity", "ck_queue_activity_activity_valid"): _in("activity", NEW_ACTIVITIES),
        }
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_postgres_count_function(NEW_ACTIVITIES))
    else:
        adds = "".join(
            SQLITE_ADD.format(seconds=seconds, bucket=SQLITE_BUCKET.format(seconds=seconds), activity="cancelled")
            for seconds in BUCKET_SECONDS
        )
        op.execute(
            SQLITE_TRIGGER.format(
                activity="cancelled", condition=ACTIVITIES["cancelled"].format(n="NEW", o="OLD"), adds=adds
            )
        )


def downgrade() -> None:
    bind = op.get_bind()
    cancelled = bind.execute(sa.text("SELECT count(*) FROM queue_jobs WHERE state = 'cancelled'")).scalar_one()
    if cancelled:
        raise RuntimeError(
            f"{cancelled} jobs are CANCELLED, a state the older schema does not have; "
            "clean them (CleanQueue with state CANCELLED) before downgrading"
        )
    if bind.dialect.name == "postgresql":
        op.execute(_postgres_count_function(OLD_ACTIVITIES))
    else:
        op.execute("DROP TRIGGER IF EXISTS queue_jobs_activity_cancelled")
    # Counts of a kind the older schema does not know; the jobs they counted are gone already.
    op.execute("DELETE FROM queue_activity WHERE activity = 'cancelled'")
    _set_checks(
        {
            ("queue_jobs", "ck_queue_jobs_state_valid"): _in("state", OLD_STATES),
            ("queue_activity", "ck_queue_activity_activity_valid"): _in("activity", OLD_ACTIVITIES),
        }
    )
    op.drop_column("queue_jobs", "cancel_requested_at")
