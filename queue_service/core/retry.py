"""Retry policy and the pure retry-or-dead-letter decision."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from queue_service.core.errors import InvalidArgument
from queue_service.domain import DeathReason

MAX_RETRIES_LIMIT = 1000
MAX_DELAYS = 100
MAX_DELAY_LIMIT = timedelta(days=30)


@dataclass(frozen=True)
class RetryPolicy:
    """A job runs at most 1 + max_retries times; retry n waits retry_delays[n-1]."""

    max_retries: int = 3
    retry_delays: tuple[timedelta, ...] = (timedelta(seconds=5), timedelta(seconds=15), timedelta(seconds=45))
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.0

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

    def with_overrides(self, overrides: dict[str, Any] | None) -> RetryPolicy:
        """Apply a stored partial policy (see `policy_to_json`) on top of this one."""
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
        return replace(self, **changes)


@dataclass(frozen=True)
class PolicyOverride:
    """A partial policy: unset fields fall through to the queue's policy, then the server default."""

    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None

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


def policy_to_json(override: PolicyOverride) -> dict[str, Any] | None:
    if override.is_empty():
        return None
    stored: dict[str, Any] = {}
    if override.max_retries is not None:
        stored["max_retries"] = override.max_retries
    if override.retry_delays:
        stored["retry_delays_ms"] = [_milliseconds(delay) for delay in override.retry_delays]
    if override.max_delay is not None:
        stored["max_delay_ms"] = _milliseconds(override.max_delay)
    if override.jitter is not None:
        stored["jitter"] = override.jitter
    return stored


def policy_from_json(stored: dict[str, Any] | None) -> PolicyOverride:
    if not stored:
        return PolicyOverride()
    return PolicyOverride(
        max_retries=stored.get("max_retries"),
        retry_delays=tuple(timedelta(milliseconds=ms) for ms in stored.get("retry_delays_ms") or ()),
        max_delay=timedelta(milliseconds=stored["max_delay_ms"]) if stored.get("max_delay_ms") is not None else None,
        jitter=stored.get("jitter"),
    )


def effective_policy(
    default: RetryPolicy, queue_policy: dict[str, Any] | None, job_policy: dict[str, Any] | None
) -> RetryPolicy:
    """The job's own override wins, then the queue's policy, then the server default."""
    return default.with_overrides(queue_policy).with_overrides(job_policy)


@dataclass(frozen=True)
class RetryDecision:
    should_retry: bool
    retry_delay: timedelta
    next_retry_at: datetime | None
    remaining_retries: int
    death_reason: DeathReason | None


def get_retry_decision(
    policy: RetryPolicy,
    *,
    runs_in_budget: int,
    now: datetime,
    non_retryable: bool = False,
    retry_after: timedelta | None = None,
    lease_expired: bool = False,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide what follows a failed run, the `runs_in_budget`-th since the retry budget was set."""
    if non_retryable:
        return RetryDecision(False, timedelta(0), None, 0, DeathReason.NON_RETRYABLE)
    if runs_in_budget > policy.max_retries:
        reason = DeathReason.LEASE_EXPIRED if lease_expired else DeathReason.RETRIES_EXHAUSTED
        return RetryDecision(False, timedelta(0), None, 0, reason)
    if retry_after is not None:
        delay = min(max(retry_after, timedelta(0)), policy.max_delay)
    else:
        delay = policy.delay_for_retry(runs_in_budget, rng)
    return RetryDecision(True, delay, now + delay, remaining_retries(policy, runs_in_budget), None)


def remaining_retries(policy: RetryPolicy, runs_in_budget: int) -> int:
    """Further runs the policy allows after the current or last run: 3 after run 1 of the default policy."""
    return max(policy.max_retries + 1 - max(runs_in_budget, 1), 0)
