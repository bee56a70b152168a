"""Queue activity: completed, failed, retried and dead-lettered jobs per queue in five-minute and hourly buckets.

Revision ID: 0005_queue_activity
Revises: 0004_check_constraint_names
Create Date: 2026-11-29

Triggers on queue_jobs count each state change in the same transaction as the change, whatever
code path issues it, into the five-minute and the hourly bucket holding the job's new updated_at
(the service's clock, not the database's). GetQueueActivity then sums a few rows per queue and
bucket instead of scanning jobs; the hourly rows keep a week's chart to a few thousand rows. What
counts:

    completed      a job entered COMPLETED
    failed         an ACTIVE job became FAILED (a retry follows) or DEAD_LETTER (a failed run)
    retried        an ACTIVE job became FAILED (a retry scheduled), or DEAD_LETTER became WAITING (sent back)
    dead_lettered  a job entered DEAD_LETTER from any state

Writers spread over several rows per key exactly as queue_counters does (0002_admin_audit): on
PostgreSQL a writer adds to a row it can lock without waiting, or inserts a new one; readers sum.
History starts with this revision; earlier state changes are not reconstructed.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import BigId, UTCDateTime

revision = "0005_queue_activity"
down_revision = "0004_check_constraint_names"
branch_labels = None
depends_on = None

BUCKET_SECONDS = (300, 3600)

# activity -> the condition on a state change (old state o, new state n) that counts it.
ACTIVITIES = {
    "completed": "{n}.state = 'completed' AND {o}.state <> 'completed'",
    "failed": "{o}.state = 'active' AND {n}.state IN ('failed', 'dead_letter')",
    "retried": "({o}.state = 'active' AND {n}.state = 'failed') OR ({o}.state = 'dead_letter' AND {n}.state = 'waiting')",
    "dead_lettered": "{n}.state = 'dead_letter' AND {o}.state <> 'dead_letter'",
}

POSTGRES_ADD_FUNCTION = """
CREATE FUNCTION queue_activity_add(
    key_queue text, key_seconds integer, key_bucket timestamptz, key_activity text, change bigint
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_activity SET amount = amount + change
    WHERE id = (
        SELECT id FROM queue_activity
        WHERE queue_name = key_queue AND bucket_seconds = key_seconds AND bucket_start = key_bucket
          AND activity = key_activity
        LIMIT 1 FOR UPDATE SKIP LOCKED
    );
    IF NOT FOUND THEN
        INSERT INTO queue_activity (queue_name, bucket_seconds, bucket_start, activity, amount)
        VALUES (key_queue, key_seconds, key_bucket, key_activity, change);
    END IF;
END
$$
"""

POSTGRES_COUNT_FUNCTION = """
CREATE FUNCTION queue_jobs_activity() RETURNS trigger
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

POSTGRES_TRIGGER = """
CREATE TRIGGER queue_jobs_activity_update AFTER UPDATE ON queue_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION queue_jobs_activity()
"""

# SQLite stores UTC datetimes as naive "YYYY-MM-DD HH:MM:SS.ffffff" text; the bucket must be
# written in exactly that form so that range comparisons with bound values hold.
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


def upgrade() -> None:
    op.create_table(
        "queue_activity",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("bucket_seconds", sa.Integer(), nullable=False),
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        sa.Column("activity", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name="pk_queue_activity"),
        sa.CheckConstraint("activity IN ('completed', 'failed', 'retried', 'dead_lettered')", name="activity_valid"),
        sa.CheckConstraint("bucket_seconds IN (300, 3600)", name="bucket_seconds_valid"),
    )
    op.create_index("ix_queue_activity_bucket_seconds", "queue_activity", ["bucket_seconds", "bucket_start"])
    op.create_index(
        "ix_queue_activity_queue_name", "queue_activity", ["queue_name", "bucket_seconds", "bucket_start", "activity"]
    )

    if op.get_bind().dialect.name == "postgresql":
        cases = ", ".join(
            f"CASE WHEN {condition.format(n='n', o='o')} THEN '{activity}' END"
            for activity, condition in ACTIVITIES.items()
        )
        op.execute(POSTGRES_ADD_FUNCTION)
        resolutions = ", ".join(f"({seconds})" for seconds in BUCKET_SECONDS)
        op.execute(POSTGRES_COUNT_FUNCTION.format(resolutions=resolutions, cases=cases))
        op.execute(POSTGRES_TRIGGER)
    else:
        for activity, condition in ACTIVITIES.items():
            adds = "".join(
                SQLITE_ADD.format(seconds=seconds, bucket=SQLITE_BUCKET.format(seconds=seconds), activity=activity)
                for seconds in BUCKET_SECONDS
            )
            op.execute(
                SQLITE_TRIGGER.format(activity=activity, condition=condition.format(n="NEW", o="OLD"), adds=adds)
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS queue_jobs_activity_update ON queue_jobs")
        op.execute("DROP FUNCTION IF EXISTS queue_jobs_activity()")
        op.execute("DROP FUNCTION IF EXISTS queue_activity_add(text, integer, timestamptz, text, bigint)")
    else:
        for activity in ACTIVITIES:
            op.execute(f"DROP TRIGGER IF EXISTS queue_jobs_activity_{activity}")
    op.drop_index("ix_queue_activity_queue_name", table_name="queue_activity")
    op.drop_index("ix_queue_activity_bucket_seconds", table_name="queue_activity")
    op.drop_table("queue_activity")
