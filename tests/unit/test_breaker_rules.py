"""The circuit breaker's pure rules: when it trips, when it may probe, its transitions, the ramp."""

from datetime import UTC, datetime, timedelta

import pytest

from queue_service.core.breaker import (
    TRANSITIONS,
    BreakerTransition,
    WindowCounts,
    holds_retries,
    is_closed,
    is_probe,
    probe_due,
    ramp_times,
    should_trip,
    target,
    validate_policy,
    window_start,
)
from queue_service.core.errors import InvalidArgument
from queue_service.domain import BreakerPolicy, BreakerRecord, BreakerState

NOW = datetime(2026, 2, 14, 10, 0, tzinfo=UTC)
ON = BreakerPolicy(enabled=True, failure_ratio=0.5, min_runs=20, window=timedelta(seconds=60))


def record(state=BreakerState.CLOSED, policy=ON, **fields) -> BreakerRecord:
    values = {
        "queue_name": "q",
        "policy": policy,
        "state": state,
        "version": 1,
        "changed_at": NOW,
        "closed_at": None,
        "opened_at": None,
        "probe_job_id": "",
        "probe_attempt": 0,
        "updated_at": NOW,
    }
    values.update(fields)
    return BreakerRecord(**values)


@pytest.mark.parametrize(
    ("runs", "failures", "trips"),
    [(19, 19, False), (20, 9, False), (20, 10, True), (40, 20, True), (40, 19, False), (0, 0, False)],
)
def test_it_trips_at_the_ratio_of_at_least_min_runs(runs, failures, trips):
    assert should_trip(ON, WindowCounts(runs, failures)) is trips


def test_ratios_compare_exactly():
    policy = BreakerPolicy(enabled=True, failure_ratio=0.3, min_runs=1)
    assert should_trip(policy, WindowCounts(10, 3))  # 0.3 * 10 is 3.0000000000000004 in floats
    assert not should_trip(policy, WindowCounts(10, 2))


def test_a_breaker_that_is_off_never_trips_or_holds():
    off = BreakerPolicy(enabled=False)
    assert not should_trip(off, WindowCounts(100, 100))
    assert is_closed(record(BreakerState.OPEN, policy=off))
    assert not holds_retries(record(BreakerState.OPEN, policy=off))
    assert is_closed(None) and not holds_retries(None)


def test_open_and_half_open_hold_retries():
    assert holds_retries(record(BreakerState.OPEN))
    assert holds_retries(record(BreakerState.HALF_OPEN))
    assert not holds_retries(record(BreakerState.CLOSED))


def test_the_window_never_reaches_before_the_last_close():
    assert window_start(record(), NOW) == NOW - timedelta(seconds=60)
    closed = record(closed_at=NOW - timedelta(seconds=10))
    assert window_start(closed, NOW) == NOW - timedelta(seconds=10)
    assert window_start(record(closed_at=NOW - timedelta(hours=1)), NOW) == NOW - timedelta(seconds=60)


def test_a_probe_is_due_after_the_cool_down_only_while_open():
    opened = record(BreakerState.OPEN, opened_at=NOW)
    assert not probe_due(opened, NOW + ON.cooldown - timedelta(microseconds=1))
    assert probe_due(opened, NOW + ON.cooldown)
    assert not probe_due(record(BreakerState.HALF_OPEN, opened_at=NOW), NOW + timedelta(days=1))
    assert not probe_due(record(BreakerState.CLOSED, opened_at=NOW), NOW + timedelta(days=1))


def test_the_probe_is_one_job_at_one_attempt():
    half = record(BreakerState.HALF_OPEN, probe_job_id="j", probe_attempt=3)
    assert is_probe(half, "j", 3)
    assert not is_probe(half, "j", 2) and not is_probe(half, "k", 3)
    assert not is_probe(record(BreakerState.OPEN, probe_job_id="j", probe_attempt=3), "j", 3)


@pytest.mark.parametrize(
    ("transition", "start", "end"),
    [
        (BreakerTransition.TRIP, BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerTransition.PROBE, BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerTransition.PROBE, BreakerState.HALF_OPEN, BreakerState.HALF_OPEN),
        (BreakerTransition.CLOSE, BreakerState.HALF_OPEN, BreakerState.CLOSED),
        (BreakerTransition.REOPEN, BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerTransition.RESET, BreakerState.OPEN, BreakerState.CLOSED),
    ],
)
def test_transitions(transition, start, end):
    assert target(transition, start) == end


def test_no_transition_starts_where_the_table_does_not_say():
    for transition, (sources, _) in TRANSITIONS.items():
        for state in set(BreakerState) - sources:
            with pytest.raises(ValueError, match=transition.value):
                target(transition, state)
    # Only a probe closes the breaker; an open breaker is never closed directly.
    assert BreakerState.OPEN not in TRANSITIONS[BreakerTransition.CLOSE][0]


def test_the_ramp_spreads_held_jobs_and_never_moves_one_earlier():
    ramp = timedelta(seconds=10)
    times = ramp_times([NOW - timedelta(minutes=5)] * 5, NOW, ramp)
    assert times == [NOW + timedelta(seconds=2 * index) for index in range(5)]
    later = NOW + timedelta(seconds=9)
    assert ramp_times([NOW, later], NOW, ramp) == [NOW, later]
    assert ramp_times([], NOW, ramp) == []
    assert ramp_times([NOW - timedelta(1)] * 3, NOW, timedelta(0)) == [NOW] * 3


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"failure_ratio": 0.0}, "failure_ratio"),
        ({"failure_ratio": 1.0000001}, "failure_ratio"),
        ({"failure_ratio": float("nan")}, "failure_ratio"),
        ({"failure_ratio": float("inf")}, "failure_ratio"),
        ({"min_runs": 0}, "min_runs"),
        ({"min_runs": 1_000_001}, "min_runs"),
        ({"window": timedelta(0)}, "window"),
        ({"window": timedelta(hours=1, seconds=1)}, "window"),
        ({"window": timedelta(milliseconds=1500)}, "window"),
        ({"cooldown": timedelta(0)}, "cooldown"),
        ({"cooldown": timedelta(days=1, seconds=1)}, "cooldown"),
        ({"ramp": timedelta(seconds=-1)}, "ramp"),
        ({"ramp": timedelta(hours=2)}, "ramp"),
    ],
)
def test_validation_names_the_field(fields, field):
    policy = BreakerPolicy(enabled=True, **fields)
    with pytest.raises(InvalidArgument) as raised:
        validate_policy(policy)
    assert raised.value.field == f"circuit_breaker.{field}"


def test_the_limits_themselves_are_valid():
    validate_policy(BreakerPolicy(enabled=True, failure_ratio=1.0, min_runs=1_000_000, window=timedelta(hours=1)))
    validate_policy(
        BreakerPolicy(min_runs=1, window=timedelta(seconds=1), cooldown=timedelta(seconds=1), ramp=timedelta(0))
    )
