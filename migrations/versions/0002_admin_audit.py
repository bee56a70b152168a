"""Admin API: audit events, dead-letter resolution fields, trigger-maintained queue counters.

Revision ID: 0002_admin_audit
Revises: 0001
Create Date: 2026-11-28

queue_counters holds exact per-queue counts of jobs by state and of dead-letter entries by
recovery status, kept by triggers in the same transaction as every insert, update and delete,
whatever code path issues them. GetStatistics then reads a few rows instead of counting a table.

On PostgreSQL a writer adds its delta to a counter row it can lock without waiting
(FOR UPDATE SKIP LOCKED), or inserts a new row for the key when all are busy; readers sum the
rows per key. Writers therefore never queue behind each other on a hot counter row and cannot
deadlock on counters, and the number of rows per key stays bounded by the number of concurrent
writers. SQLite has a single writer, so one row per key suffices there.

ix_queue_jobs_state_run_at gains queue_name so that "WAITING or FAILED with run_at in the
future, per queue" (the delayed split of the statistics) is an index-only range scan.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import BigId, JsonDocument, UTCDateTime

revision = "0002_admin_audit"
down_revision = "0001"
branch_labels = None
depends_on = None

# One counter key per (table, state column): "jobs.<state>" and "dead_letters.<recovery_status>".
COUNTED = (("queue_jobs", "jobs", "state"), ("dead_letter_queue", "dead_letters", "recovery_status"))

POSTGRES_ADD_FUNCTION = """
CREATE FUNCTION queue_counters_add(key_queue text, key_counter text, change bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_counters SET amount = amount + change
    WHERE id = (
        SELECT id FROM queue_counters
        WHERE queue_name = key_queue AND counter = key_counter
        LIMIT 1 FOR UPDATE SKIP LOCKED
    );
    IF NOT FOUND THEN
        INSERT INTO queue_counters (queue_name, counter, amount) VALUES (key_queue, key_counter, change);
    END IF;
END
$$
"""

POSTGRES_COUNT_FUNCTION = """
CREATE FUNCTION {table}_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR change IN
            SELECT queue_name, '{prefix}.' || {column} AS counter, count(*) AS amount
            FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        LOOP
            PERFORM queue_counters_add(change.queue_name, change.counter, change.amount);
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        FOR change IN
            SELECT queue_name, '{prefix}.' || {column} AS counter, -count(*) AS amount
            FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
        LOOP
            PERFORM queue_counters_add(change.queue_name, change.counter, change.amount);
        END LOOP;
    ELSE
        FOR change IN
            SELECT queue_name, counter, sum(amount) AS amount FROM (
                SELECT queue_name, '{prefix}.' || {column} AS counter, 1 AS amount FROM new_rows
                UNION ALL
                SELECT queue_name, '{prefix}.' || {column} AS counter, -1 AS amount FROM old_rows
            ) AS changes
            GROUP BY 1, 2 HAVING sum(amount) <> 0 ORDER BY 1, 2
        LOOP
            PERFORM queue_counters_add(change.queue_name, change.counter, change.amount);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$
"""

POSTGRES_TRIGGERS = """
CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count();
CREATE TRIGGER {table}_count_update AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count();
CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count()
"""

SQLITE_ADD = """
    INSERT INTO queue_counters (queue_name, counter, amount)
    SELECT {row}.queue_name, '{prefix}.' || {row}.{column}, 0
    WHERE NOT EXISTS (
        SELECT 1 FROM queue_counters WHERE queue_name = {row}.queue_name AND counter = '{prefix}.' || {row}.{column}
    );
    UPDATE queue_counters SET amount = amount + ({change})
    WHERE queue_name = {row}.queue_name AND counter = '{prefix}.' || {row}.{column};
"""

SQLITE_TRIGGERS = (
    "CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} BEGIN"
    + SQLITE_ADD.format(row="NEW", change="1", prefix="{prefix}", column="{column}")
    + "END",
    "CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} BEGIN"
    + SQLITE_ADD.format(row="OLD", change="-1", prefix="{prefix}", column="{column}")
    + "END",
    "CREATE TRIGGER {table}_count_update AFTER UPDATE OF queue_name, {column} ON {table} "
    "WHEN OLD.queue_name IS NOT NEW.queue_name OR OLD.{column} IS NOT NEW.{column} BEGIN"
    + SQLITE_ADD.format(row="OLD", change="-1", prefix="{prefix}", column="{column}")
    + SQLITE_ADD.format(row="NEW", change="1", prefix="{prefix}", column="{column}")
    + "END",
)

BACKFILL = """
INSERT INTO queue_counters (queue_name, counter, amount)
SELECT queue_name, '{prefix}.' || {column}, count(*) FROM {table} GROUP BY queue_name, {column}
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False, server_default=sa.text("''")),
        sa.Column("parameters", JsonDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    op.create_index("ix_audit_events_actor", "audit_events", ["actor", "id"])
    op.create_index("ix_audit_events_action", "audit_events", ["action", "id"])
    op.create_index("ix_audit_events_target", "audit_events", ["target", "id"])

    op.add_column(
        "dead_letter_queue", sa.Column("resolution_reason", sa.Text(), nullable=False, server_default=sa.text("''"))
    )
    op.add_column(
        "dead_letter_queue", sa.Column("resolved_by", sa.String(255), nullable=False, server_default=sa.text("''"))
    )
    op.add_column("dead_letter_queue", sa.Column("resolved_at", UTCDateTime(), nullable=True))

    op.drop_index("ix_queue_jobs_state_run_at", table_name="queue_jobs")
    op.create_index("ix_queue_jobs_state_run_at_queue_name", "queue_jobs", ["state", "run_at", "queue_name"])

    op.create_table(
        "queue_counters",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("counter", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name="pk_queue_counters"),
    )
    op.create_index("ix_queue_counters_queue_name", "queue_counters", ["queue_name", "counter"])

    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(POSTGRES_ADD_FUNCTION)
    for table, prefix, column in COUNTED:
        op.execute(BACKFILL.format(table=table, prefix=prefix, column=column))
        if postgres:
            op.execute(POSTGRES_COUNT_FUNCTION.format(table=table, prefix=prefix, column=column))
            for statement in POSTGRES_TRIGGERS.format(table=table).split(";"):
                op.execute(statement)
        else:
            for template in SQLITE_TRIGGERS:
                op.execute(template.format(table=table, prefix=prefix, column=column))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _prefix, _column in COUNTED:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{event}" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_count()")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS queue_counters_add(text, text, bigint)")
    op.drop_index("ix_queue_counters_queue_name", table_name="queue_counters")
    op.drop_table("queue_counters")
    op.drop_index("ix_queue_jobs_state_run_at_queue_name", table_name="queue_jobs")
    op.create_index("ix_queue_jobs_state_run_at", "queue_jobs", ["state", "run_at"])
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of the table would trip over the summary view.
    for column in ("resolved_at", "resolved_by", "resolution_reason"):
        op.execute(f"ALTER TABLE dead_letter_queue DROP COLUMN {column}")
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_index("ix_audit_events_actor", table_name="audit_events")
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
    op.drop_table("audit_events")
