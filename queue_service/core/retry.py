"""Retry policy and the pure retry-or-dead-letter decision."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import check_text
from queue_service.domain import DeathReason

MAX_RETRIES_LIMIT = 1000
MAX_DELAYS = 100
MAX_DELAY_LIMIT = timedelta(days=30)
MAX_RULES = 50
# As long as a reported error.type may be.
MAX_ERROR_TYPE_LENGTH = 255
MAX_RETRY_DURATION_LIMIT = timedelta(days=365)


@dataclass(frozen=True)
class RetryRule:
    """How failures of one reported error type retry: unset fields fall through to the job's policy."""

    error_type: str
    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None
    # False sends a failure of this type straight to the dead-letter queue.
    retryable: bool = True


@dataclass(frozen=True)
class ScopedRule:
    """A rule with where it was set: "job" or "queue"."""

    scope: str
    rule: RetryRule

    @property
    def name(self) -> str:
        return f"{self.scope}:{self.rule.error_type}"


@dataclass(frozen=True)
class RetryPolicy:
    """A job runs at most 1 + max_retries times; retry n waits retry_delays[n-1]."""

    max_retries: int = 3
    retry_delays: tuple[timedelta, ...] = (timedelta(seconds=5), timedelta(seconds=15), timedelta(seconds=45))
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.0
    # Rules by error type, one per type; a job's rule replaces its queue's rule for the same type.
    rules: tuple[ScopedRule, ...] = ()
    # How long a job may keep failing, since its first failure, before it dies at its next one.
    max_retry_duration: timedelta | None = None

    def delay_for_retry(self, retry_number: int, rng: random.Random | None = None) -> timedelta:
        """Delay before retry `retry_number` (1-based), growing by the list's last ratio past its end."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        cap = self.max_delay.total_seconds()
        delays = [delay.total_seconds() for delay in self.retry_delays] or [0.0]
        if retry_number <= len(delays):
            seconds = delays[retry_number - 1]
        else:
            ratio = delays[-1] / delays[-2] if len(delays) >= 2 and delays[-2] > 0 else 1.0
            seconds = delays[-1]
            for _ in range(retry_number - len(delays)):
                seconds *= ratio
                if seconds >= cap:
                    break
        seconds = min(seconds, cap)
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            seconds = min(max(seconds * (1 + spread), 0.0), cap)
        return timedelta(seconds=seconds)

    def rule_for(self, error_type: str) -> ScopedRule | None:
        """The rule for failures of `error_type`, if there is one."""
        if not error_type:
            return None
        return next((scoped for scoped in self.rules if scoped.rule.error_type == error_type), None)

    def for_error(self, error_type: str) -> tuple[RetryPolicy, ScopedRule | None]:
        """The policy that decides about a failure of `error_type`: the matching rule's fields over this one."""
        scoped = self.rule_for(error_type)
        if scoped is None:
            return self, None
        rule = scoped.rule
        changes: dict[str, Any] = {}
        if rule.max_retries is not None:
            changes["max_retries"] = rule.max_retries
        if rule.retry_delays:
            changes["retry_delays"] = rule.retry_delays
        if rule.max_delay is not None:
            changes["max_delay"] = rule.max_delay
        if rule.jitter is not None:
            changes["jitter"] = rule.jitter
        return replace(self, **changes), scoped

    def with_overrides(self, overrides: dict[str, Any] | None, scope: str = "queue") -> RetryPolicy:
        """Apply a stored partial policy (see `policy_to_json`) set at `scope` on top of this one."""
        if not overrides:
            return self
        changes: dict[str, Any] = {}
        if overrides.get("max_retries") is not None:
            changes["max_retries"] = int(overrides["max_retries"])
        if overrides.get("retry_delays_ms"):
            changes["retry_delays"] = tuple(timedelta(milliseconds=ms) for ms in overrides["retry_delays_ms"])
        if overrides.get("max_delay_ms") is not None:
            changes["max_delay"] = timedelta(milliseconds=overrides["max_delay_ms"])
        if overrides.get("jitter") is not None:
            changes["jitter"] = float(overrides["jitter"])
        if overrides.get("max_retry_duration_ms") is not None:
            changes["max_retry_duration"] = timedelta(milliseconds=overrides["max_retry_duration_ms"])
        if overrides.get("rules"):
            added = [ScopedRule(scope, rule_from_json(stored)) for stored in overrides["rules"]]
            replaced = {scoped.rule.error_type for scoped in added}
            kept = [scoped for scoped in self.rules if scoped.rule.error_type not in replaced]
            changes["rules"] = (*added, *kept)
        return replace(self, **changes)


@dataclass(frozen=True)
class PolicyOverride:
    """A partial policy: unset fields fall through to the queue's policy, then the server default."""

    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None
    rules: tuple[RetryRule, ...] = ()
    max_retry_duration: timedelta | None = None

    def is_empty(self) -> bool:
        return self == PolicyOverride()


def _milliseconds(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def _check_resolution(delay: timedelta, name: str, field: str) -> None:
    # Policies are stored in milliseconds: a delay under one would be stored as 0.
    if timedelta(0) < delay < timedelta(milliseconds=1):
        raise InvalidArgument(
            f"{name} is below the resolution of 1 millisecond that retry policies are kept in",
            field=field,
        )


def validate_override(override: PolicyOverride, field: str = "retry_policy") -> None:
    _validate_backoff(override, field)
    if override.max_retry_duration is not None:
        if not timedelta(0) < override.max_retry_duration <= MAX_RETRY_DURATION_LIMIT:
            raise InvalidArgument(
                f"{field}.max_retry_duration must be positive and at most 365 days",
                field=f"{field}.max_retry_duration",
            )
        _check_resolution(override.max_retry_duration, f"{field}.max_retry_duration", f"{field}.max_retry_duration")
    if len(override.rules) > MAX_RULES:
        raise InvalidArgument(f"{field}.rules has more than {MAX_RULES} rules", field=f"{field}.rules")
    seen: set[str] = set()
    for index, rule in enumerate(override.rules):
        prefix = f"{field}.rules[{index}]"
        if not rule.error_type or not rule.error_type.strip():
            raise InvalidArgument(f"{prefix}.error_type must not be empty", field=f"{prefix}.error_type")
        check_text(rule.error_type, f"{prefix}.error_type", MAX_ERROR_TYPE_LENGTH)
        if rule.error_type in seen:
            raise InvalidArgument(
                f"{prefix}.error_type {rule.error_type!r} has a rule already; give one rule per error type",
                field=f"{prefix}.error_type",
            )
        seen.add(rule.error_type)
        _validate_backoff(rule, prefix)


def _validate_backoff(override: PolicyOverride | RetryRule, field: str) -> None:
    if override.max_retries is not None and not 0 <= override.max_retries <= MAX_RETRIES_LIMIT:
        raise InvalidArgument(
            f"{field}.max_retries must be between 0 and {MAX_RETRIES_LIMIT}", field=f"{field}.max_retries"
        )
    if len(override.retry_delays) > MAX_DELAYS:
        raise InvalidArgument(f"{field}.retry_delays has more than {MAX_DELAYS} entries", field=f"{field}.retry_delays")
    for index, delay in enumerate(override.retry_delays):
        if delay < timedelta(0) or delay > MAX_DELAY_LIMIT:
            raise InvalidArgument(
                f"{field}.retry_delays[{index}] must be between 0 and 30 days", field=f"{field}.retry_delays"
            )
        _check_resolution(delay, f"{field}.retry_delays[{index}]", f"{field}.retry_delays")
    if override.max_delay is not None and not timedelta(0) < override.max_delay <= MAX_DELAY_LIMIT:
        raise InvalidArgument(f"{field}.max_delay must be positive and at most 30 days", field=f"{field}.max_delay")
    if override.max_delay is not None:
        _check_resolution(override.max_delay, f"{field}.max_delay", f"{field}.max_delay")
    if override.jitter is not None and not 0.0 <= override.jitter <= 1.0:
        raise InvalidArgument(f"{field}.jitter must be between 0 and 1", field=f"{field}.jitter")


def _backoff_to_json(override: PolicyOverride | RetryRule, stored: dict[str, Any]) -> dict[str, Any]:
    if override.max_retries is not None:
        stored["max_retries"] = override.max_retries
    if override.retry_delays:
        stored["retry_delays_ms"] = [_milliseconds(delay) for delay in override.retry_delays]
    if override.max_delay is not None:
        stored["max_delay_ms"] = _milliseconds(override.max_delay)
    if override.jitter is not None:
        stored["jitter"] = override.jitter
    return stored


def rule_to_json(rule: RetryRule) -> dict[str, Any]:
    stored = _backoff_to_json(rule, {"error_type": rule.error_type})
    if not rule.retryable:
        stored["retryable"] = False
    return stored


def rule_from_json(stored: dict[str, Any]) -> RetryRule:
    return RetryRule(
        error_type=stored["error_type"], retryable=stored.get("retryable", True), **_backoff_from_json(stored)
    )


def policy_to_json(override: PolicyOverride) -> dict[str, Any] | None:
    if override.is_empty():
        return None
    stored = _backoff_to_json(override, {})
    if override.max_retry_duration is not None:
        stored["max_retry_duration_ms"] = _milliseconds(override.max_retry_duration)
    if override.rules:
        stored["rules"] = [rule_to_json(rule) for rule in override.rules]
    return stored


def _backoff_from_json(stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_retries": stored.get("max_retries"),
        "retry_delays": tuple(timedelta(milliseconds=ms) for ms in stored.get("retry_delays_ms") or ()),
        "max_delay": timedelta(milliseconds=stored["max_delay_ms"]) if stored.get("max_delay_ms") is not None else None,
        "jitter": stored.get("jitter"),
    }


def policy_from_json(stored: dict[str, Any] | None) -> PolicyOverride:
    if not stored:
        return PolicyOverride()
    duration_ms = stored.get("max_retry_duration_ms")
    return PolicyOverride(
        **_backoff_from_json(stored),
        rules=tuple(rule_from_json(rule) for rule in stored.get("rules") or ()),
        max_retry_duration=timedelta(milliseconds=duration_ms) if duration_ms is not None else None,
    )


def effective_policy(
    default: RetryPolicy, queue_policy: dict[str, Any] | None, job_policy: dict[str, Any] | None
) -> RetryPolicy:
    """The job's own override wins, then the queue's policy, then the server default; rules merge
    by error type with the same precedence."""
    return default.with_overrides(queue_policy, "queue").with_overrides(job_policy, "job")


@dataclass(frozen=True)
class RetryDecision:
    should_retry: bool
    retry_delay: timedelta
    next_retry_at: datetime | None
    remaining_retries: int
    death_reason: DeathReason | None
    # The rule that decided, as "queue:TimeoutError"; "" when the policy without rules did.
    retry_rule: str = ""


def get_retry_decision(
    policy: RetryPolicy,
    *,
    runs_in_budget: int,
    now: datetime,
    error_type: str = "",
    first_failed_at: datetime | None = None,
    non_retryable: bool = False,
    retry_after: timedelta | None = None,
    lease_expired: bool = False,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide what follows a failed run, the `runs_in_budget`-th since the retry budget was set.

    In order: a failure reported non-retryable, or matching a rule with retryable=false, dies;
    then one past the budget (the matching rule's max_retries, else the policy's); then one more
    than max_retry_duration after `first_failed_at`, the job's first failure in this budget. Else
    it retries after retry_after, or the delay of the matching rule or the policy, capped by max_delay."""
    deciding, scoped = policy.for_error(error_type)
    rule = scoped.name if scoped else ""

    def dies(reason: DeathReason) -> RetryDecision:
        return RetryDecision(False, timedelta(0), None, 0, reason, rule)

    if non_retryable or (scoped is not None and not scoped.rule.retryable):
        return dies(DeathReason.NON_RETRYABLE)
    if runs_in_budget > deciding.max_retries:
        return dies(DeathReason.LEASE_EXPIRED if lease_expired else DeathReason.RETRIES_EXHAUSTED)
    if (
        policy.max_retry_duration is not None
        and first_failed_at is not None
        and now - first_failed_at > policy.max_retry_duration
    ):
        return dies(DeathReason.RETRY_DEADLINE_EXCEEDED)
    if retry_after is not None:
        delay = min(max(retry_after, timedelta(0)), deciding.max_delay)
    else:
        delay = deciding.delay_for_retry(runs_in_budget, rng)
    return RetryDecision(True, delay, now + delay, remaining_retries(deciding, runs_in_budget), None, rule)


def remaining_retries(policy: RetryPolicy, runs_in_budget: int) -> int:
    """Further runs the policy allows after the current or last run: 3 after run 1 of the default policy."""
    return max(policy.max_retries + 1 - max(runs_in_budget, 1), 0)
