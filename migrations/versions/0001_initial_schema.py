"""Initial schema: jobs, dead-letter queue, retry log, recovery runs, queues and statistics views.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import BigId, JsonDocument, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

READY = "state IN ('waiting', 'failed')"

QUEUE_STATISTICS_VIEW = """
CREATE VIEW queue_statistics AS
SELECT
    queue_name,
    SUM(CASE WHEN state = 'waiting' THEN 1 ELSE 0 END) AS waiting_count,
    SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END) AS active_count,
    SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed_count,
    SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed_count,
    SUM(CASE WHEN state = 'failed' AND run_at <= CURRENT_TIMESTAMP THEN 1 ELSE 0 END) AS retryable_count,
    SUM(CASE WHEN state = 'dead_letter' THEN 1 ELSE 0 END) AS dead_letter_count
FROM queue_jobs
GROUP BY queue_name
"""

DEAD_LETTER_SUMMARY_VIEW = """
CREATE VIEW dead_letter_queue_summary AS
SELECT
    queue_name,
    COUNT(*) AS total_failed_jobs,
    SUM(CASE WHEN recovery_status = 'pending' THEN 1 ELSE 0 END) AS pending_recovery,
    SUM(CASE WHEN recovery_status = 'recovered' THEN 1 ELSE 0 END) AS recovered,
    SUM(CASE WHEN recovery_status = 'permanently_failed' THEN 1 ELSE 0 END) AS permanently_failed
FROM dead_letter_queue
GROUP BY queue_name
"""


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("paused", sa.Boolean(name="paused_bool"), nullable=False, server_default=sa.text("false")),
        sa.Column("retry_policy", JsonDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_queues"),
    )
    op.create_table(
        "queue_jobs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("job_data", JsonDocument, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("attempt_number", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("budget_start", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("retry_policy", JsonDocument, nullable=True),
        sa.Column("run_at", UTCDateTime(), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("worker_id", sa.String(255), nullable=True),
        sa.Column("last_error", JsonDocument, nullable=True),
        sa.Column("error_history", JsonDocument, nullable=True),
        sa.Column("result", JsonDocument, nullable=True),
        sa.Column("processing_duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("dead_letter_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_queue_jobs"),
        sa.UniqueConstraint("job_id", name="uq_queue_jobs_job_id"),
        sa.CheckConstraint(
            "state IN ('waiting', 'active', 'completed', 'failed', 'dead_letter')", name="ck_queue_jobs_state_valid"
        ),
        sa.CheckConstraint("attempt_number >= 0", name="ck_queue_jobs_attempt_number_nonnegative"),
        sa.CheckConstraint(
            "budget_start >= 0 AND budget_start <= attempt_number", name="ck_queue_jobs_budget_start_valid"
        ),
        sa.CheckConstraint("state <> 'active' OR lease_expires_at IS NOT NULL", name="ck_queue_jobs_active_has_lease"),
    )
    op.create_index(
        "ix_queue_jobs_ready",
        "queue_jobs",
        ["queue_name", sa.text("priority DESC"), "run_at", "id"],
        postgresql_where=sa.text(READY),
        sqlite_where=sa.text(READY),
    )
    op.create_index(
        "ix_queue_jobs_lease_expiry",
        "queue_jobs",
        ["lease_expires_at"],
        postgresql_where=sa.text("state = 'active'"),
        sqlite_where=sa.text("state = 'active'"),
    )
    op.create_index("ix_queue_jobs_state_run_at", "queue_jobs", ["state", "run_at"])
    op.create_index("ix_queue_jobs_queue_state", "queue_jobs", ["queue_name", "state", "updated_at"])

    op.create_table(
        "dead_letter_queue",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("job_name", sa.String(100), nullable=False),
        sa.Column("job_data", JsonDocument, nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=False),
        sa.Column("error_type", sa.String(255), nullable=False, server_default=sa.text("''")),
        sa.Column("total_attempts", sa.Integer(), nullable=False),
        sa.Column("error_history", JsonDocument, nullable=False),
        sa.Column("death_reason", sa.String(32), nullable=False),
        sa.Column("recovery_status", sa.String(32), nullable=False),
        sa.Column("recovery_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("admin_notes", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("assigned_to", sa.String(255), nullable=False, server_default=sa.text("''")),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("fingerprint", sa.String(64), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("dead_lettered_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter_queue"),
        sa.UniqueConstraint("job_id", name="uq_dead_letter_queue_job_id"),
        sa.CheckConstraint(
            "recovery_status IN ('pending', 'recovered', 'permanently_failed')",
            name="ck_dead_letter_queue_recovery_status_valid",
        ),
        sa.CheckConstraint(
            "death_reason IN ('retries_exhausted', 'non_retryable', 'lease_expired', 'moved_explicitly')",
            name="ck_dead_letter_queue_death_reason_valid",
        ),
    )
    op.create_index(
        "ix_dead_letter_queue_triage",
        "dead_letter_queue",
        ["recovery_status", sa.text("priority DESC"), sa.text("dead_lettered_at DESC"), "id"],
    )
    op.create_index(
        "ix_dead_letter_queue_queue_triage",
        "dead_letter_queue",
        ["queue_name", "recovery_status", sa.text("priority DESC"), sa.text("dead_lettered_at DESC")],
    )
    op.create_index("ix_dead_letter_queue_fingerprint", "dead_letter_queue", ["fingerprint", "recovery_status"])

    op.create_table(
        "queue_retry_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("error", JsonDocument, nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("retry_delay_ms", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("remaining_retries", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_retry_at", UTCDateTime(), nullable=True),
        sa.Column("death_reason", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_queue_retry_log"),
        sa.CheckConstraint("decision IN ('retry', 'dead_letter')", name="ck_queue_retry_log_decision_valid"),
    )
    op.create_index("ix_queue_retry_log_job", "queue_retry_log", ["job_id", "attempt_number"])
    op.create_index("ix_queue_retry_log_queue_created", "queue_retry_log", ["queue_name", "created_at"])
    op.create_index("ix_queue_retry_log_created", "queue_retry_log", ["created_at"])

    op.create_table(
        "queue_recovery_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False, server_default=sa.text("'scheduled'")),
        sa.Column("node_id", sa.String(255), nullable=False, server_default=sa.text("''")),
        sa.Column("counts", JsonDocument, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_queue_recovery_runs"),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_queue_recovery_runs_status_valid"),
    )
    op.create_index("ix_queue_recovery_runs_started", "queue_recovery_runs", ["started_at"])

    op.execute(QUEUE_STATISTICS_VIEW)
    op.execute(DEAD_LETTER_SUMMARY_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS dead_letter_queue_summary")
    op.execute("DROP VIEW IF EXISTS queue_statistics")
    op.drop_table("queue_recovery_runs")
    op.drop_table("queue_retry_log")
    op.drop_table("dead_letter_queue")
    op.drop_table("queue_jobs")
    op.drop_table("queues")
