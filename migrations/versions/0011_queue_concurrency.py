"""Per-queue lease limits: the most ACTIVE jobs and a start-rate token bucket.

Revision ID: 0011_queue_concurrency
Revises: 0010_unique_jobs
Create Date: 2026-12-05

queue_lease_limits holds a row per queue that has a limit: max_active, max_starts_per_second and
the token bucket of the start rate (tokens left at refilled_at). LeaseJobs locks the rows of the
queues it leases from, so that the limits hold across every replica.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0011_queue_concurrency"
down_revision = "0010_unique_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_lease_limits",
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("max_active", sa.Integer(), nullable=True),
        sa.Column("max_starts_per_second", sa.Float(), nullable=True),
        sa.Column("tokens", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("refilled_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue_name", name="pk_queue_lease_limits"),
        sa.CheckConstraint("max_active >= 1", name="max_active_positive"),
        sa.CheckConstraint("max_starts_per_second > 0", name="max_starts_per_second_positive"),
        sa.CheckConstraint("tokens >= 0", name="tokens_nonnegative"),
        sa.CheckConstraint("max_active IS NOT NULL OR max_starts_per_second IS NOT NULL", name="some_limit"),
    )


def downgrade() -> None:
    op.drop_table("queue_lease_limits")
