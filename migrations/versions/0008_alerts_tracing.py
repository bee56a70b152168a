"""An outbox of email alerts, per-queue alert policies, and the producer's trace context on each job.

Revision ID: 0008_alerts_tracing
Revises: 0007_schedules
Create Date: 2026-12-05

alert_outbox holds alerts until an SMTP server took them, so that one that is down delays an
alert instead of losing it. queue_alert_policies holds each queue's DLQ alert threshold and
email recipients. queue_jobs.trace_parent keeps the W3C traceparent of the call that
created the job, handed to workers on lease.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import JsonDocument, UTCDateTime

revision = "0008_alerts_tracing"
down_revision = "0007_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy queue_jobs on SQLite and drop its counter triggers.
    op.add_column(
        "queue_jobs",
        sa.Column("trace_parent", sa.String(128), nullable=False, server_default=sa.text("''")),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("recipients", JsonDocument, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_valid"),
        sa.CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    )
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["status", "next_attempt_at", "id"])
    op.create_table(
        "queue_alert_policies",
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("dlq_alert_threshold", sa.Integer(), nullable=True),
        sa.Column("email_recipients", JsonDocument, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue_name", name="pk_queue_alert_policies"),
        sa.CheckConstraint("dlq_alert_threshold >= 0", name="dlq_alert_threshold_nonnegative"),
    )


def downgrade() -> None:
    op.drop_table("queue_alert_policies")
    op.drop_index("ix_alert_outbox_due", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_column("queue_jobs", "trace_parent")
