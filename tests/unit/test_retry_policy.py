"""The backoff policy and retry decision as pure functions of their inputs and an injected clock."""

import random
from datetime import timedelta

import pytest

from queue_service.clock import FakeClock
from queue_service.core.errors import InvalidArgument
from queue_service.core.retry import (
    PolicyOverride,
    RetryPolicy,
    effective_policy,
    get_retry_decision,
    policy_from_json,
    policy_to_json,
    validate_override,
)
from queue_service.domain import DeathReason

S = timedelta(seconds=1)


def test_default_policy_follows_the_seed_schedule():
    policy = RetryPolicy()
    assert [policy.delay_for_retry(n) for n in (1, 2, 3)] == [5 * S, 15 * S, 45 * S]


def test_delays_past_the_list_grow_by_the_last_ratio_up_to_the_cap():
    policy = RetryPolicy(max_retries=10, max_delay=timedelta(minutes=10))
    assert policy.delay_for_retry(4) == 135 * S
    assert policy.delay_for_retry(5) == 405 * S
    assert policy.delay_for_retry(6) == 600 * S  # 1215 s capped at 10 minutes
    assert policy.delay_for_retry(1000) == 600 * S


def test_a_single_delay_repeats():
    policy = RetryPolicy(max_retries=5, retry_delays=(7 * S,))
    assert [policy.delay_for_retry(n) for n in (1, 2, 5)] == [7 * S, 7 * S, 7 * S]


def test_jitter_stays_within_its_spread_and_is_off_by_default():
    policy = RetryPolicy(jitter=0.5)
    rng = random.Random(7)
    delays = {policy.delay_for_retry(2, rng) for _ in range(50)}
    assert len(delays) > 1
    assert all(7.5 * S <= delay <= 22.5 * S for delay in delays)
    assert RetryPolicy().delay_for_retry(2, rng) == 15 * S


def test_decisions_for_four_runs_then_dead_letter():
    clock = FakeClock()
    now = clock.now()
    policy = RetryPolicy()
    decisions = [get_retry_decision(policy, runs_in_budget=run, now=now) for run in (1, 2, 3, 4)]
    assert [d.should_retry for d in decisions] == [True, True, True, False]
    assert [d.retry_delay for d in decisions[:3]] == [5 * S, 15 * S, 45 * S]
    assert [d.next_retry_at for d in decisions[:3]] == [now + 5 * S, now + 15 * S, now + 45 * S]
    assert [d.remaining_retries for d in decisions] == [3, 2, 1, 0]
    assert decisions[3].death_reason == DeathReason.RETRIES_EXHAUSTED
    assert decisions[3].next_retry_at is None


def test_non_retryable_dies_at_once():
    decision = get_retry_decision(RetryPolicy(), runs_in_budget=1, now=FakeClock().now(), non_retryable=True)
    assert not decision.should_retry
    assert decision.death_reason == DeathReason.NON_RETRYABLE


def test_lease_expiry_on_the_last_run_is_recorded_as_such():
    decision = get_retry_decision(RetryPolicy(), runs_in_budget=4, now=FakeClock().now(), lease_expired=True)
    assert decision.death_reason == DeathReason.LEASE_EXPIRED


def test_retry_after_replaces_the_delay_within_the_cap():
    now = FakeClock().now()
    policy = RetryPolicy(max_delay=timedelta(minutes=1))
    assert get_retry_decision(policy, runs_in_budget=1, now=now, retry_after=30 * S).retry_delay == 30 * S
    assert get_retry_decision(policy, runs_in_budget=1, now=now, retry_after=timedelta(hours=2)).retry_delay == 60 * S


def test_job_override_beats_queue_policy_beats_default():
    default = RetryPolicy()
    queue = policy_to_json(PolicyOverride(max_retries=5, retry_delays=(1 * S, 2 * S)))
    job = policy_to_json(PolicyOverride(max_retries=1))
    policy = effective_policy(default, queue, job)
    assert policy.max_retries == 1
    assert policy.retry_delays == (1 * S, 2 * S)
    assert policy.max_delay == default.max_delay
    assert effective_policy(default, None, None) == default


def test_policy_json_round_trip():
    override = PolicyOverride(max_retries=2, retry_delays=(1500 * S / 1000,), max_delay=90 * S, jitter=0.1)
    assert policy_from_json(policy_to_json(override)) == override
    assert policy_to_json(PolicyOverride()) is None


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (PolicyOverride(max_retries=-1), "retry_policy.max_retries"),
        (PolicyOverride(retry_delays=(-1 * S,)), "retry_policy.retry_delays"),
        (PolicyOverride(max_delay=timedelta(0)), "retry_policy.max_delay"),
        (PolicyOverride(jitter=1.5), "retry_policy.jitter"),
    ],
)
def test_invalid_overrides_name_their_field(override, field):
    with pytest.raises(InvalidArgument) as raised:
        validate_override(override)
    assert raised.value.field == field
