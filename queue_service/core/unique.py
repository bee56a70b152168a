"""Unique jobs: checks a producer's unique options and turns them into the slot a job holds.

A slot names the queue, the key and the window of time the job was enqueued in; the store lets
at most one job hold a slot while that job is in its counted states (see ix_queue_jobs_unique_slot).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import LONGEST_DURATION, check_duration, describe_duration, require_name
from queue_service.domain import UNIQUE_REQUIRED_STATES, JobState, UniqueClaim

MAX_UNIQUE_KEY_LENGTH = 255
# Windows shorter than this would make a new slot for almost every enqueue.
SHORTEST_WINDOW = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class UniqueOptions:
    """What the producer asks: jobs of one queue with `key` are duplicates while one of them is in
    `states` (None: UNIQUE_REQUIRED_STATES) and, with a `window`, enqueued in the same window."""

    key: str
    window: timedelta | None = None
    states: frozenset[JobState] | None = None


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the window `now` falls in, counting whole windows from the Unix epoch."""
    return EPOCH + (now - EPOCH) // window * window


def claim(options: UniqueOptions, queue_name: str, now: datetime, prefix: str = "") -> UniqueClaim:
    """The checked claim of a job enqueued at `now`; errors name the field under `{prefix}unique.`."""
    field = f"{prefix}unique."
    key = require_name(options.key, f"{field}unique_key", MAX_UNIQUE_KEY_LENGTH)
    window = check_duration(options.window, f"{field}window", maximum=LONGEST_DURATION)
    if window is not None and window < SHORTEST_WINDOW:
        raise InvalidArgument(
            f"{field}window must be at least {describe_duration(SHORTEST_WINDOW)}; leave it unset for no window",
            field=f"{field}window",
        )
    states = frozenset(UNIQUE_REQUIRED_STATES) if options.states is None else options.states
    missing = [state for state in UNIQUE_REQUIRED_STATES if state not in states]
    if missing:
        raise InvalidArgument(
            f"{field}states must include {', '.join(state.value.upper() for state in UNIQUE_REQUIRED_STATES)} "
            f"(a job moves among them on its own); missing {', '.join(state.value.upper() for state in missing)}",
            field=f"{field}states",
        )
    bucket = window_start(now, window).isoformat() if window is not None else None
    slot = hashlib.sha256(json.dumps([queue_name, key, bucket]).encode()).hexdigest()
    return UniqueClaim(key=key, slot=slot, states=states)
