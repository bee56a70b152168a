"""The circuit breaker against retry storms, as pure rules: when a queue's breaker trips, when it
may lease a probe, what each transition does, and how the held jobs are released.

When a downstream service dies, every job of a queue fails together and retries together. The
breaker notices the failure ratio of the queue's runs over a sliding window and opens: leases
then hand out nothing of the queue, and runs that fail while it is open use up no attempt.
After a cool-down one probe job is leased (half-open); its success closes the breaker and
spreads the held jobs over a ramp, its failure opens the breaker again.

The database side (the breaker row, the window's counters) is queue_service/store/breakers.py;
the hooks into the lease, completion and failure paths are queue_service/core/breakers.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from queue_service.core.errors import InvalidArgument
from queue_service.domain import BreakerPolicy, BreakerRecord, BreakerState

MAX_MIN_RUNS = 1_000_000
# The window is counted in whole seconds; at most an hour keeps its rows few.
MAX_WINDOW = timedelta(hours=1)
MAX_COOLDOWN = timedelta(days=1)
MAX_RAMP = timedelta(hours=1)
# Ratios compare as whole parts per million, so that 0.3 of 10 runs is 3 failures exactly.
RATIO_SCALE = 1_000_000


class BreakerTransition(StrEnum):
    TRIP = "trip"
    PROBE = "probe"
    CLOSE = "close"
    REOPEN = "reopen"
    # An admin turned the breaker off while it was not closed.
    RESET = "reset"


# Each transition: the states it starts from and the state it leads to. A PROBE from HALF_OPEN
# replaces a probe that ended without a verdict (cut from a lease reply, moved by an admin).
TRANSITIONS: dict[BreakerTransition, tuple[frozenset[BreakerState], BreakerState]] = {
    BreakerTransition.TRIP: (frozenset({BreakerState.CLOSED}), BreakerState.OPEN),
    BreakerTransition.PROBE: (frozenset({BreakerState.OPEN, BreakerState.HALF_OPEN}), BreakerState.HALF_OPEN),
    BreakerTransition.CLOSE: (frozenset({BreakerState.HALF_OPEN}), BreakerState.CLOSED),
    BreakerTransition.REOPEN: (frozenset({BreakerState.HALF_OPEN}), BreakerState.OPEN),
    BreakerTransition.RESET: (frozenset({BreakerState.OPEN, BreakerState.HALF_OPEN}), BreakerState.CLOSED),
}

# The audit action of each transition.
AUDIT_ACTIONS = {
    BreakerTransition.TRIP: "CircuitBreakerOpened",
    BreakerTransition.PROBE: "CircuitBreakerHalfOpened",
    BreakerTransition.CLOSE: "CircuitBreakerClosed",
    BreakerTransition.REOPEN: "CircuitBreakerReopened",
    BreakerTransition.RESET: "CircuitBreakerReset",
}
# Who the audit log names for transitions the service makes itself.
AUDIT_ACTOR = "system:circuit-breaker"


@dataclass(frozen=True)
class WindowCounts:
    runs: int = 0
    failures: int = 0


@dataclass(frozen=True)
class BreakerChange:
    """One committed transition of a queue's breaker."""

    queue_name: str
    transition: BreakerTransition
    from_state: BreakerState
    to_state: BreakerState
    at: datetime
    counts: WindowCounts = WindowCounts()
    probe_job_id: str = ""


def validate_policy(policy: BreakerPolicy, prefix: str = "circuit_breaker") -> BreakerPolicy:
    """The policy if every field is in range; InvalidArgument naming the first field that is not.
    A breaker that is off is checked too, so that turning it on later cannot surprise."""
    ratio = policy.failure_ratio
    if not isinstance(ratio, float | int) or math.isnan(ratio) or not 0 < ratio <= 1:
        raise InvalidArgument(f"{prefix}.failure_ratio must be in (0, 1]", field=f"{prefix}.failure_ratio")
    if not 1 <= policy.min_runs <= MAX_MIN_RUNS:
        raise InvalidArgument(f"{prefix}.min_runs must be 1 to {MAX_MIN_RUNS}", field=f"{prefix}.min_runs")
    _check_duration(policy.window, f"{prefix}.window", minimum=timedelta(seconds=1), maximum=MAX_WINDOW)
    _check_duration(policy.cooldown, f"{prefix}.cooldown", minimum=timedelta(seconds=1), maximum=MAX_COOLDOWN)
    _check_duration(policy.ramp, f"{prefix}.ramp", minimum=timedelta(0), maximum=MAX_RAMP)
    if policy.window % timedelta(seconds=1):
        raise InvalidArgument(f"{prefix}.window must be whole seconds", field=f"{prefix}.window")
    return policy


def _check_duration(value: timedelta, field: str, *, minimum: timedelta, maximum: timedelta) -> None:
    if not minimum <= value <= maximum:
        raise InvalidArgument(f"{field} must be from {minimum} to {maximum}", field=field)


def should_trip(policy: BreakerPolicy, counts: WindowCounts) -> bool:
    """True when at least min_runs runs were counted and failure_ratio of them failed."""
    if not policy.enabled or counts.runs < policy.min_runs or counts.runs <= 0:
        return False
    return counts.failures * RATIO_SCALE >= round(policy.failure_ratio * RATIO_SCALE) * counts.runs


def is_closed(record: BreakerRecord | None) -> bool:
    """A missing or disabled breaker counts as closed, whatever its stored state."""
    return record is None or not record.policy.enabled or record.state == BreakerState.CLOSED


def holds_retries(record: BreakerRecord | None) -> bool:
    """While open or half-open, failed runs of the queue use up no attempt."""
    return not is_closed(record)


def window_start(record: BreakerRecord, now: datetime) -> datetime:
    """The window reaches back `window`, but never before the breaker last closed: the runs that
    opened it do not open it again."""
    start = now - record.policy.window
    return max(start, record.closed_at) if record.closed_at else start


def probe_due(record: BreakerRecord, now: datetime) -> bool:
    """An open breaker leases one probe once its cool-down is over."""
    return (
        record.policy.enabled
        and record.state == BreakerState.OPEN
        and record.opened_at is not None
        and now >= record.opened_at + record.policy.cooldown
    )


def is_probe(record: BreakerRecord, job_id: str, attempt_number: int) -> bool:
    return (
        record.state == BreakerState.HALF_OPEN
        and record.probe_job_id == job_id
        and record.probe_attempt == attempt_number
    )


def target(transition: BreakerTransition, state: BreakerState) -> BreakerState:
    """The state `transition` leads to from `state`; ValueError if it cannot start there."""
    sources, to_state = TRANSITIONS[transition]
    if state not in sources:
        raise ValueError(f"breaker transition {transition.value} cannot start from {state.value}")
    return to_state


def ramp_times(run_ats: list[datetime], now: datetime, ramp: timedelta) -> list[datetime]:
    """New run times for the held jobs, in lease order: spread evenly over [now, now + ramp), and
    never earlier than a job was due anyway."""
    count = len(run_ats)
    if count == 0:
        return []
    return [max(run_at, now + ramp * index / count) for index, run_at in enumerate(run_ats)]
