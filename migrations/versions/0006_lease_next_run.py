"""Leases record when their holder runs next: the recovery leader's next scheduled sweep.

Revision ID: 0006_lease_next_run
Revises: 0005_queue_activity
Create Date: 2026-12-05

GetRecoveryStatus reads the leader and its next sweep from this row, so that every process of
every replica gives the same answer, not only the process that runs the scheduler.
"""

import sqlalchemy as sa
from alembic import op

from queue_service.store.schema import UTCDateTime

revision = "0006_lease_next_run"
down_revision = "0005_queue_activity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_leases") as batch:
        batch.add_column(sa.Column("next_run_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queue_leases") as batch:
        batch.drop_column("next_run_at")
