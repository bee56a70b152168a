"""Retry rules by error type and the total retry deadline, as pure functions of their inputs and a fake clock."""

from datetime import timedelta

import pytest

from queue_service.clock import FakeClock
from queue_service.core.errors import InvalidArgument
from queue_service.core.retry import (
    MAX_RULES,
    PolicyOverride,
    RetryPolicy,
    RetryRule,
    effective_policy,
    get_retry_decision,
    policy_from_json,
    policy_to_json,
    validate_override,
)
from queue_service.domain import DeathReason

S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DEFAULT = RetryPolicy(max_retries=3, retry_delays=(5 * S, 15 * S), max_delay=timedelta(hours=1))
TIMEOUT_RULE = RetryRule("TimeoutError", max_retries=6, retry_delays=(2 * S, 4 * S), max_delay=2 * MINUTE)
VALIDATION_RULE = RetryRule("ValidationError", retryable=False)
QUEUE_POLICY = policy_to_json(PolicyOverride(rules=(TIMEOUT_RULE, VALIDATION_RULE)))


def decide(policy, runs, error_type="", first_failed_at=None, **options):
    clock = options.pop("clock", FakeClock())
    return get_retry_decision(
        policy, runs_in_budget=runs, now=clock.now(), error_type=error_type, first_failed_at=first_failed_at, **options
    )


def test_a_matching_rule_sets_the_budget_and_the_delays_and_is_named():
    policy = effective_policy(DEFAULT, QUEUE_POLICY, None)
    delays = [decide(policy, run, "TimeoutError").retry_delay for run in range(1, 7)]
    assert delays == [2 * S, 4 * S, 8 * S, 16 * S, 32 * S, 64 * S]
    sixth = decide(policy, 6, "TimeoutError")
    assert (sixth.should_retry, sixth.remaining_retries, sixth.retry_rule) == (True, 1, "queue:TimeoutError")
    seventh = decide(policy, 7, "TimeoutError")
    assert (seventh.should_retry, seventh.death_reason) == (False, DeathReason.RETRIES_EXHAUSTED)
    assert seventh.retry_rule == "queue:TimeoutError"


def test_the_rule_caps_growth_at_its_own_max_delay():
    policy = effective_policy(DEFAULT, policy_to_json(PolicyOverride(rules=(TIMEOUT_RULE,), max_retries=20)), None)
    rule_policy, _ = policy.for_error("TimeoutError")
    assert rule_policy.delay_for_retry(7) == 2 * MINUTE  # 128 s capped at 2 minutes
    assert decide(policy, 5, "TimeoutError", retry_after=timedelta(hours=1)).retry_delay == 2 * MINUTE


def test_a_non_retryable_rule_dead_letters_the_first_failure():
    decision = decide(effective_policy(DEFAULT, QUEUE_POLICY, None), 1, "ValidationError")
    assert (decision.should_retry, decision.death_reason) == (False, DeathReason.NON_RETRYABLE)
    assert decision.retry_rule == "queue:ValidationError"


def test_unmatched_types_take_the_default_policy_and_name_no_rule():
    policy = effective_policy(DEFAULT, QUEUE_POLICY, None)
    for error_type in ("", "KeyError", "timeouterror"):
        decision = decide(policy, 1, error_type)
        assert (decision.retry_delay, decision.remaining_retries, decision.retry_rule) == (5 * S, 3, "")
    assert decide(policy, 4, "KeyError").death_reason == DeathReason.RETRIES_EXHAUSTED


def test_a_job_rule_replaces_the_queue_rule_of_its_type_and_keeps_the_others():
    job_policy = policy_to_json(PolicyOverride(rules=(RetryRule("TimeoutError", max_retries=1),)))
    policy = effective_policy(DEFAULT, QUEUE_POLICY, job_policy)
    decision = decide(policy, 1, "TimeoutError")
    # The job's rule sets only max_retries: its delays are the effective policy's, not the queue rule's.
    assert (decision.retry_rule, decision.remaining_retries, decision.retry_delay) == ("job:TimeoutError", 1, 5 * S)
    assert decide(policy, 2, "TimeoutError").death_reason == DeathReason.RETRIES_EXHAUSTED
    assert decide(policy, 1, "ValidationError").retry_rule == "queue:ValidationError"


def test_a_job_policy_without_rules_overrides_fields_under_the_queue_rules():
    policy = effective_policy(DEFAULT, QUEUE_POLICY, policy_to_json(PolicyOverride(max_retries=0)))
    assert decide(policy, 1, "KeyError").death_reason == DeathReason.RETRIES_EXHAUSTED
    assert decide(policy, 1, "TimeoutError").should_retry


def test_the_worker_flag_wins_over_a_retrying_rule():
    decision = decide(effective_policy(DEFAULT, QUEUE_POLICY, None), 1, "TimeoutError", non_retryable=True)
    assert (decision.death_reason, decision.retry_rule) == (DeathReason.NON_RETRYABLE, "queue:TimeoutError")


def test_lease_expiry_past_a_rule_budget_keeps_its_reason():
    policy = effective_policy(
        DEFAULT, policy_to_json(PolicyOverride(rules=(RetryRule("LeaseExpired", max_retries=0),))), None
    )
    decision = decide(policy, 1, "LeaseExpired", lease_expired=True)
    assert (decision.death_reason, decision.retry_rule) == (DeathReason.LEASE_EXPIRED, "queue:LeaseExpired")


def test_the_deadline_dead_letters_a_failure_past_it_with_retries_left():
    clock = FakeClock()
    first = clock.now()
    policy = RetryPolicy(max_retries=100, max_retry_duration=10 * MINUTE)
    clock.advance(10 * MINUTE)
    assert decide(policy, 5, first_failed_at=first, clock=clock).should_retry  # exactly at the deadline
    clock.advance(timedelta(milliseconds=1))
    decision = decide(policy, 6, first_failed_at=first, clock=clock)
    assert (decision.should_retry, decision.death_reason) == (False, DeathReason.RETRY_DEADLINE_EXCEEDED)


def test_the_first_failure_never_meets_the_deadline():
    policy = RetryPolicy(max_retries=3, max_retry_duration=timedelta(milliseconds=1))
    assert decide(policy, 1, first_failed_at=None).should_retry


def test_an_exhausted_budget_is_named_before_the_deadline():
    clock = FakeClock()
    first = clock.now()
    clock.advance(timedelta(days=1))
    policy = RetryPolicy(max_retries=2, max_retry_duration=MINUTE)
    assert decide(policy, 3, first_failed_at=first, clock=clock).death_reason == DeathReason.RETRIES_EXHAUSTED


def test_the_deadline_falls_through_job_queue_default():
    queue = policy_to_json(PolicyOverride(max_retry_duration=timedelta(hours=1)))
    assert effective_policy(DEFAULT, queue, None).max_retry_duration == timedelta(hours=1)
    job = policy_to_json(PolicyOverride(max_retry_duration=timedelta(minutes=5)))
    assert effective_policy(DEFAULT, queue, job).max_retry_duration == timedelta(minutes=5)
    assert effective_policy(DEFAULT, None, None).max_retry_duration is None


def test_rules_and_deadline_survive_the_stored_form():
    override = PolicyOverride(max_retries=2, rules=(TIMEOUT_RULE, VALIDATION_RULE), max_retry_duration=MINUTE)
    stored = policy_to_json(override)
    assert stored["rules"][1] == {"error_type": "ValidationError", "retryable": False}
    assert stored["max_retry_duration_ms"] == 60_000
    assert policy_from_json(stored) == override


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (PolicyOverride(rules=(RetryRule(""),)), "retry_policy.rules[0].error_type"),
        (PolicyOverride(rules=(RetryRule("  "),)), "retry_policy.rules[0].error_type"),
        (PolicyOverride(rules=(RetryRule("E" * 256),)), "retry_policy.rules[0].error_type"),
        (PolicyOverride(rules=(RetryRule("A\x00"),)), "retry_policy.rules[0].error_type"),
        (PolicyOverride(rules=(RetryRule("A"), RetryRule("B"), RetryRule("A"))), "retry_policy.rules[2].error_type"),
        (PolicyOverride(rules=tuple(RetryRule(f"E{n}") for n in range(MAX_RULES + 1))), "retry_policy.rules"),
        (PolicyOverride(rules=(RetryRule("A", max_retries=-1),)), "retry_policy.rules[0].max_retries"),
        (PolicyOverride(rules=(RetryRule("A", max_retries=1001),)), "retry_policy.rules[0].max_retries"),
        (PolicyOverride(rules=(RetryRule("A", retry_delays=(-S,)),)), "retry_policy.rules[0].retry_delays"),
        (PolicyOverride(rules=(RetryRule("A", max_delay=timedelta(days=31)),)), "retry_policy.rules[0].max_delay"),
        (PolicyOverride(rules=(RetryRule("A", jitter=1.5),)), "retry_policy.rules[0].jitter"),
        (PolicyOverride(max_retry_duration=timedelta(0)), "retry_policy.max_retry_duration"),
        (PolicyOverride(max_retry_duration=-S), "retry_policy.max_retry_duration"),
        (PolicyOverride(max_retry_duration=timedelta(days=366)), "retry_policy.max_retry_duration"),
        (PolicyOverride(max_retry_duration=timedelta(microseconds=10)), "retry_policy.max_retry_duration"),
    ],
)
def test_bad_rules_and_deadlines_are_refused_naming_the_field(override, field):
    with pytest.raises(InvalidArgument) as raised:
        validate_override(override)
    assert raised.value.field == field


def test_the_most_rules_allowed_pass():
    validate_override(PolicyOverride(rules=tuple(RetryRule(f"E{n}") for n in range(MAX_RULES))))
