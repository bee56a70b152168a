"""Retry rules by error type and a total retry deadline.

Revision ID: 0012_retry_rules
Revises: 0011_queue_concurrency
Create Date: 2026-12-05

queue_jobs.retry_rule names the rule that decided a job's last failure ("" for the default
policy); queue_jobs.first_failed_at is when the job first failed in its current retry budget,
from which max_retry_duration counts. Rules and the deadline themselves live in the retry policy
JSON the jobs and queues already hold. The dead-letter death_reason check accepts the new
'retry_deadline_exceeded'.

On SQLite the check is widened by editing the table definition (as 0004_check_constraint_names
does), since a batch copy of dead_letter_queue would drop its counter triggers. Downgrading
records the new reason as 'retries_exhausted' first (entries and retry log), so that the narrower check holds.
"""

import re

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0012_retry_rules"
down_revision = "0011_queue_concurrency"
branch_labels = None
depends_on = None

CONSTRAINT = "ck_dead_letter_queue_death_reason_valid"
OLD_REASONS = ("retries_exhausted", "non_retryable", "lease_expired", "moved_explicitly")
NEW_REASONS = (*OLD_REASONS, "retry_deadline_exceeded")


def _check(reasons: tuple[str, ...]) -> str:
    return f"death_reason IN ({', '.join(repr(reason) for reason in reasons)})"


def _set_death_reasons(reasons: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f'ALTER TABLE dead_letter_queue DROP CONSTRAINT "{CONSTRAINT}"')
        op.execute(f'ALTER TABLE dead_letter_queue ADD CONSTRAINT "{CONSTRAINT}" CHECK ({_check(reasons)})')
        return
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dead_letter_queue'")
    ).scalar_one()
    edited, count = re.subn(
        rf"CONSTRAINT {CONSTRAINT} CHECK \(death_reason IN \([^)]*\)\)",
        f"CONSTRAINT {CONSTRAINT} CHECK ({_check(reasons)})",
        sql,
    )
    if count != 1:
        raise RuntimeError(f"dead_letter_queue has no single {CONSTRAINT} to edit")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'dead_letter_queue'"),
        {"sql": edited},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    # Reading the table makes SQLite parse the edited definition now, failing the migration if it is wrong.
    bind.exec_driver_sql("SELECT * FROM dead_letter_queue LIMIT 0").all()


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode would copy queue_jobs on SQLite and drop its counter triggers.
    op.add_column("queue_jobs", sa.Column("retry_rule", sa.String(261), nullable=False, server_default=sa.text("''")))
    op.add_column("queue_jobs", sa.Column("first_failed_at", UTCDateTime(), nullable=True))
    _set_death_reasons(NEW_REASONS)


def downgrade() -> None:
    for table in ("dead_letter_queue", "queue_retry_log"):
        op.execute(
            f"UPDATE {table} SET death_reason = 'retries_exhausted' WHERE death_reason = 'retry_deadline_exceeded'"
        )
    _set_death_reasons(OLD_REASONS)
    op.drop_column("queue_jobs", "first_failed_at")
    op.drop_column("queue_jobs", "retry_rule")
