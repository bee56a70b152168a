"""Dead-letter entries convert to the message they always did, their timestamps set in place."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jobqueue.v1 import job_pb2

from queue_service.api import convert
from queue_service.api.convert import DEATH_REASONS, RECOVERY_STATUSES, timestamp
from queue_service.domain import DeadLetterRecord, DeathReason, ErrorInfo, RecoveryStatus

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def entry(**changes) -> DeadLetterRecord:
    fields = dict(
        id="0b6a1c3e-0000-4000-8000-000000000001",
        job_id="job-1",
        queue_name="emails",
        job_name="send",
        failure_reason="SMTP timeout",
        error_type="TimeoutError",
        total_attempts=4,
        death_reason=DeathReason.RETRIES_EXHAUSTED,
        recovery_status=RecoveryStatus.PENDING,
        recovery_attempts=0,
        admin_notes="",
        assigned_to="",
        priority=0,
        fingerprint="f",
        created_at=NOW,
        dead_lettered_at=NOW,
        updated_at=NOW,
        job_data={"to": "a@example.com"},
        error_history=[ErrorInfo("SMTP timeout", "TimeoutError", "", 4, NOW)],
    )
    return DeadLetterRecord(**(fields | changes))


def reference_summary(item: DeadLetterRecord) -> job_pb2.DeadLetterEntry:
    """The summary as it was built before its timestamps were set in place."""
    return job_pb2.DeadLetterEntry(
        id=item.id,
        job_id=item.job_id,
        queue_name=item.queue_name,
        job_name=item.job_name,
        failure_reason=item.failure_reason,
        error_type=item.error_type,
        total_attempts=item.total_attempts,
        death_reason=DEATH_REASONS[item.death_reason],
        recovery_status=RECOVERY_STATUSES[item.recovery_status],
        recovery_attempts=item.recovery_attempts,
        admin_notes=item.admin_notes,
        assigned_to=item.assigned_to,
        priority=item.priority,
        fingerprint=item.fingerprint,
        created_at=timestamp(item.created_at),
        dead_lettered_at=timestamp(item.dead_lettered_at),
        updated_at=timestamp(item.updated_at),
        resolution_reason=item.resolution_reason,
        resolved_by=item.resolved_by,
        resolved_at=timestamp(item.resolved_at),
    )


@pytest.mark.parametrize(
    "item",
    [
        entry(),
        entry(
            recovery_status=RecoveryStatus.PERMANENTLY_FAILED,
            resolution_reason="known bug",
            resolved_by="ops",
            resolved_at=NOW,
            admin_notes="see ticket",
            assigned_to="ana",
            priority=7,
        ),
        entry(created_at=EPOCH, dead_lettered_at=EPOCH, updated_at=EPOCH, resolved_at=EPOCH),
    ],
    ids=["pending", "resolved", "at-the-epoch"],
)
def test_entries_convert_as_they_always_did(item):
    summary = convert.dead_letter_summary_message(item)
    assert summary == reference_summary(item)
    assert summary.SerializeToString(deterministic=True) == reference_summary(item).SerializeToString(
        deterministic=True
    )
    assert summary.HasField("resolved_at") == (item.resolved_at is not None)
    whole = convert.dead_letter_message(item)
    assert whole.created_at == summary.created_at and whole.resolved_at == summary.resolved_at
    assert whole.HasField("job_data") and len(whole.error_history) == 1
