"""Cron schedules: one row per schedule, with the next slot the leader enqueues a job for.

Revision ID: 0007_schedules
Revises: 0006_lease_next_run
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import JsonDocument, UTCDateTime

revision = "0007_schedules"
down_revision = "0006_lease_next_run"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_schedules",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("job_data", JsonDocument, nullable=True),
        sa.Column("retry_policy", JsonDocument, nullable=True),
        sa.Column("misfire_policy", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean(name="paused_bool"), nullable=False, server_default=sa.text("false")),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_queue_schedules")),
        sa.CheckConstraint("misfire_policy IN ('skip', 'run_once')", name="misfire_policy_known"),
    )
    op.create_index(op.f("ix_queue_schedules_next_run_at"), "queue_schedules", ["next_run_at"])


def downgrade() -> None:
    op.drop_index("ix_queue_schedules_next_run_at", table_name="queue_schedules")
    op.drop_table("queue_schedules")
