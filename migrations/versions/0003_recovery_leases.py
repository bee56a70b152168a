"""Recovery sweep: leases for leader election and the sweep lock, DLQ alert state, sweep indexes.

Revision ID: 0003_recovery_leases
Revises: 0002_admin_audit
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0003_recovery_leases"
down_revision = "0002_admin_audit"
branch_labels = None
depends_on = None

COMPLETED = "state = 'completed'"
RETRY_PENDING = "state IN ('waiting', 'failed') AND attempt_number > budget_start"


def upgrade() -> None:
    op.create_table(
        "queue_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("elected_at", UTCDateTime(), nullable=False),
        sa.Column("renewed_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_queue_leases"),
        sa.CheckConstraint("term >= 1", name="ck_queue_leases_term_positive"),
    )
    op.create_table(
        "queue_dlq_alerts",
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("alerting", sa.Boolean(name="alerting_bool"), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue_name", name="pk_queue_dlq_alerts"),
    )
    op.create_index(
        "ix_queue_jobs_completed_at",
        "queue_jobs",
        ["completed_at"],
        postgresql_where=sa.text(COMPLETED),
        sqlite_where=sa.text(COMPLETED),
    )
    op.create_index(
        "ix_queue_jobs_retry_pending",
        "queue_jobs",
        ["id"],
        postgresql_where=sa.text(RETRY_PENDING),
        sqlite_where=sa.text(RETRY_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_queue_jobs_retry_pending", table_name="queue_jobs")
    op.drop_index("ix_queue_jobs_completed_at", table_name="queue_jobs")
    op.drop_table("queue_dlq_alerts")
    op.drop_table("queue_leases")
