"""Per-queue lease limits: their validation, the start-rate token bucket, and how many jobs one
lease may start.

A limited queue's row is locked by each lease transaction (see store/lease_limits.py), so the
active count and the bucket a lease reads are the ones the previous lease left, whichever replica
ran it: the limits hold across replicas without any coordination between them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from queue_service.core.errors import InvalidArgument
from queue_service.domain import LeaseLimitRecord, LeaseLimits

# Fields UpdateQueuePolicy's update_mask may name for the limits.
LIMIT_FIELDS = ("max_active", "max_starts_per_second")
MAX_ACTIVE_LIMIT = 1_000_000
MIN_STARTS_PER_SECOND = 0.001
MAX_STARTS_PER_SECOND = 1_000_000.0
# Tokens are floats; a start that is due by a rounding error still counts as due.
TOKEN_EPSILON = 1e-9


def validate(limits: LeaseLimits) -> LeaseLimits:
    active = limits.max_active
    if active is not None and not 1 <= active <= MAX_ACTIVE_LIMIT:
        raise InvalidArgument(
            f"max_active must be between 1 and {MAX_ACTIVE_LIMIT}; to stop leasing, pause the queue",
            field="max_active",
        )
    rate = limits.max_starts_per_second
    if rate is not None:
        if not math.isfinite(rate):
            raise InvalidArgument("max_starts_per_second must be a finite number", field="max_starts_per_second")
        if not MIN_STARTS_PER_SECOND <= rate <= MAX_STARTS_PER_SECOND:
            raise InvalidArgument(
                f"max_starts_per_second must be between {MIN_STARTS_PER_SECOND} and {MAX_STARTS_PER_SECOND:.0f}",
                field="max_starts_per_second",
            )
    return limits


def merge(current: LeaseLimits, given: LeaseLimits, mask: tuple[str, ...] | None) -> LeaseLimits:
    """`given` over `current`: the fields the mask names, or with no mask those `given` sets."""
    if mask is None:
        mask = tuple(name for name in LIMIT_FIELDS if getattr(given, name) is not None)
    return replace(current, **{name: getattr(given, name) for name in mask})


def stored(
    previous: LeaseLimitRecord | None, queue_name: str, limits: LeaseLimits, now: datetime
) -> LeaseLimitRecord | None:
    """The row for new `limits`; None when there are none. A new rate starts with a full bucket."""
    if limits.unlimited:
        return None
    if previous is not None and previous.limits.max_starts_per_second == limits.max_starts_per_second:
        return replace(previous, limits=limits, updated_at=now)
    return LeaseLimitRecord(queue_name, limits, tokens=limits.burst, refilled_at=now, updated_at=now)


def refill(record: LeaseLimitRecord, now: datetime) -> tuple[float, datetime]:
    """The bucket at `now`. A clock behind the one that last refilled it (another replica's) adds
    nothing and keeps the later time, so that no interval is counted twice."""
    rate = record.limits.max_starts_per_second
    if rate is None:
        return record.tokens, record.refilled_at
    if now <= record.refilled_at:
        return record.tokens, record.refilled_at
    elapsed = (now - record.refilled_at).total_seconds()
    return min(record.limits.burst, record.tokens + elapsed * rate), now


def allowance(record: LeaseLimitRecord, active: int, now: datetime) -> int:
    """How many jobs a lease may start now: room under max_active and whole tokens in the bucket."""
    limits = record.limits
    room = math.inf
    if limits.max_active is not None:
        room = max(limits.max_active - active, 0)
    if limits.max_starts_per_second is not None:
        tokens, _ = refill(record, now)
        room = min(room, math.floor(tokens + TOKEN_EPSILON))
    return int(room) if room != math.inf else MAX_ACTIVE_LIMIT


def after_starts(record: LeaseLimitRecord, started: int, now: datetime) -> tuple[float, datetime]:
    """The bucket once `started` jobs took a token each."""
    tokens, refilled_at = refill(record, now)
    return max(tokens - started, 0.0), refilled_at
