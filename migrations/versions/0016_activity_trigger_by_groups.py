"""PostgreSQL's activity trigger counts groups of rows, and a statement that only leases counts nothing.

Revision ID: 0016_activity_trigger_by_groups
Revises: 0015_cancellation
Create Date: 2026-12-07

queue_jobs_activity (0005_queue_activity, 0015_cancellation) joined every changed row to both bucket
sizes and to every kind of activity before grouping: 1,000 rows to look at for a batch of 100
completions, and as many for a lease of 100 jobs, which counts nothing. It now returns at once when
every row of the statement is ACTIVE (a lease), and otherwise groups the rows by queue, state change
and five-minute bucket first (the rows of one statement mostly share all three), then expands those
few groups to the kinds and to both bucket sizes (an hour's bucket is the one holding the five-minute
bucket). The counts it adds are the same. SQLite's triggers are per row, with a WHEN clause for
each kind, and are unchanged.
"""

import importlib

from alembic import op

revision = "0016_activity_trigger_by_groups"
down_revision = "0015_cancellation"
branch_labels = None
depends_on = None

# The kinds and their conditions on a state change are those of 0015, which defined them last.
_previous = importlib.import_module("queue_service.migrations.versions.0015_cancellation")

POSTGRES_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION queue_jobs_activity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    -- No kind counts a change to ACTIVE: a lease's statement has nothing to count.
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE state <> 'active') THEN
        RETURN NULL;
    END IF;
    FOR change IN
        WITH moves AS (
            SELECT n.queue_name, o.state AS old_state, n.state AS new_state,
                   floor(extract(epoch FROM n.updated_at) / {finest}) * {finest} AS finest_start, count(*) AS amount
            FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
            WHERE n.state <> o.state AND n.state <> 'active'
            GROUP BY 1, 2, 3, 4
        )
        SELECT m.queue_name, r.seconds, to_timestamp(floor(m.finest_start / r.seconds) * r.seconds) AS bucket_start,
               a.activity, CAST(sum(m.amount) AS bigint) AS amount
        FROM moves AS m
        CROSS JOIN LATERAL (SELECT m.new_state AS state) AS n
        CROSS JOIN LATERAL (SELECT m.old_state AS state) AS o
        CROSS JOIN (VALUES {resolutions}) AS r(seconds)
        CROSS JOIN LATERAL unnest(ARRAY[{cases}]) AS a(activity)
        WHERE a.activity IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    LOOP
        PERFORM queue_activity_add(change.queue_name, change.seconds, change.bucket_start, change.activity, change.amount);
    END LOOP;
    RETURN NULL;
END
$$
"""


def _grouped_count_function() -> str:
    seconds = _previous.BUCKET_SECONDS
    # Each coarser bucket must hold whole finest buckets for the grouping to keep the counts.
    if any(size % min(seconds) for size in seconds):
        raise RuntimeError(f"bucket sizes {seconds} are not multiples of the smallest")
    cases = ", ".join(
        f"CASE WHEN {_previous.ACTIVITIES[activity].format(n='n', o='o')} THEN '{activity}' END"
        for activity in _previous.NEW_ACTIVITIES
    )
    resolutions = ", ".join(f"({size})" for size in seconds)
    return POSTGRES_COUNT_FUNCTION.format(finest=min(seconds), resolutions=resolutions, cases=cases)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_grouped_count_function())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous._postgres_count_function(_previous.NEW_ACTIVITIES))
