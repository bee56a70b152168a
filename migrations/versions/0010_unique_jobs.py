"""Unique jobs: a job may carry a unique key, and one unique index keeps duplicates out.

Revision ID: 0010_unique_jobs
Revises: 0008_alerts_tracing
Create Date: 2026-12-05

queue_jobs.unique_key is the producer's key, unique_slot a hash of the queue, the key and the
window the job was enqueued in, unique_states the states the job counts as a duplicate in. The
partial unique index ix_queue_jobs_unique_slot covers only the rows in their counted states, so
that a job leaving them frees its slot without a statement of its own.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_unique_jobs"
down_revision = "0008_alerts_tracing"
branch_labels = None
depends_on = None

UNIQUE_SLOT_INDEX = "ix_queue_jobs_unique_slot"
# As in schema.py at this revision; spelled out so that later edits there do not change history.
UNIQUE_SLOT_HELD = {
    "postgresql": "unique_slot IS NOT NULL AND strpos(unique_states, ',' || state || ',') > 0",
    "sqlite": "unique_slot IS NOT NULL AND instr(unique_states, ',' || state || ',') > 0",
}


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode would copy queue_jobs on SQLite and drop its counter triggers.
    op.add_column("queue_jobs", sa.Column("unique_key", sa.String(255), nullable=True))
    op.add_column("queue_jobs", sa.Column("unique_slot", sa.String(64), nullable=True))
    op.add_column("queue_jobs", sa.Column("unique_states", sa.String(100), nullable=True))
    op.create_index(
        UNIQUE_SLOT_INDEX,
        "queue_jobs",
        ["unique_slot"],
        unique=True,
        postgresql_where=sa.text(UNIQUE_SLOT_HELD["postgresql"]),
        sqlite_where=sa.text(UNIQUE_SLOT_HELD["sqlite"]),
    )


def downgrade() -> None:
    op.drop_index(UNIQUE_SLOT_INDEX, table_name="queue_jobs")
    # SQLite drops a column in place (ALTER TABLE DROP COLUMN) once no index names it.
    op.drop_column("queue_jobs", "unique_states")
    op.drop_column("queue_jobs", "unique_slot")
    op.drop_column("queue_jobs", "unique_key")
