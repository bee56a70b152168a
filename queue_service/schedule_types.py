"""Domain types of cron schedules; a leaf module, imported by the core and the store alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class MisfirePolicy(StrEnum):
    """What a schedule does with slots that passed while no leader ran it (downtime, a restart)."""

    # Drop the missed slots; run again at the next slot after now.
    SKIP = "skip"
    # Enqueue one job for the latest missed slot, then go on with the next slot after now.
    RUN_ONCE = "run_once"


@dataclass(frozen=True)
class ScheduleDefinition:
    """What an operator sets on a schedule; everything but its name may be updated."""

    cron: str
    time_zone: str
    queue_name: str
    job_name: str
    job_data: dict[str, Any] | None = None
    # Stored as the retry policy JSON the jobs table holds (see core.retry.policy_to_json).
    retry_policy: dict[str, Any] | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.SKIP


@dataclass(frozen=True)
class ScheduleRecord:
    name: str
    definition: ScheduleDefinition
    paused: bool
    # The first slot not yet enqueued; None while paused.
    next_run_at: datetime | None
    # The latest slot a job was enqueued for, if any.
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
