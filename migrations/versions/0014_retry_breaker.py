"""Per-queue circuit breakers against retry storms.

Revision ID: 0014_retry_breaker
Revises: 0012_retry_rules
Create Date: 2026-12-05

queue_breakers holds each queue's breaker policy and state (closed, open, half-open), changed by
compare-and-set on its version. queue_breaker_outcomes counts the runs and failed runs of queues
whose breaker is on, per second, for the breaker's sliding window.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0014_retry_breaker"
down_revision = "0012_retry_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_breakers",
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(name="enabled_bool"), nullable=False, server_default=sa.text("false")),
        sa.Column("failure_ratio", sa.Float(53), nullable=False),
        sa.Column("min_runs", sa.Integer(), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("cooldown_ms", sa.BigInteger(), nullable=False),
        sa.Column("ramp_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default=sa.text("'closed'")),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("1")),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=True),
        sa.Column("probe_job_id", sa.String(255), nullable=False, server_default=sa.text("''")),
        sa.Column("probe_attempt", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue_name", name="pk_queue_breakers"),
        sa.CheckConstraint("state IN ('closed', 'open', 'half_open')", name="state_valid"),
        sa.CheckConstraint("failure_ratio > 0 AND failure_ratio <= 1", name="failure_ratio_valid"),
        sa.CheckConstraint("min_runs >= 1", name="min_runs_positive"),
        sa.CheckConstraint("window_ms > 0 AND cooldown_ms > 0 AND ramp_ms >= 0", name="durations_valid"),
    )
    op.create_table(
        "queue_breaker_outcomes",
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("second_start", UTCDateTime(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("failures", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("queue_name", "second_start", "shard", name="pk_queue_breaker_outcomes"),
    )


def downgrade() -> None:
    op.drop_table("queue_breaker_outcomes")
    op.drop_table("queue_breakers")
