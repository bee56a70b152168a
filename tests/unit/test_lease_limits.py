"""The start-rate token bucket and a lease's allowance, on their own: refill, burst, clocks that disagree."""

from datetime import UTC, datetime, timedelta

import pytest

from queue_service.core import lease_limits
from queue_service.core.errors import InvalidArgument
from queue_service.domain import LeaseLimitRecord, LeaseLimits

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def bucket(tokens: float, *, rate: float | None = 2.0, max_active: int | None = None, at: datetime = NOW):
    return LeaseLimitRecord("q", LeaseLimits(max_active, rate), tokens, at, at)


def test_the_bucket_refills_at_the_rate_up_to_its_burst():
    assert lease_limits.refill(bucket(0.0), NOW + timedelta(milliseconds=250)) == (
        0.5,
        NOW + timedelta(milliseconds=250),
    )
    assert lease_limits.refill(bucket(0.0), NOW + timedelta(hours=1))[0] == 2.0
    # Below one start per second the bucket still holds one start.
    assert lease_limits.refill(bucket(0.0, rate=0.1), NOW + timedelta(hours=1))[0] == 1.0


def test_a_clock_behind_the_last_refill_adds_nothing_and_keeps_the_later_time():
    assert lease_limits.refill(bucket(0.5), NOW - timedelta(seconds=3)) == (0.5, NOW)
    assert lease_limits.after_starts(bucket(1.5), 1, NOW - timedelta(seconds=3)) == (0.5, NOW)


def test_the_allowance_is_the_smaller_of_room_and_whole_tokens():
    assert lease_limits.allowance(bucket(1.999), 0, NOW) == 1
    assert lease_limits.allowance(bucket(2.0, max_active=5), 4, NOW) == 1
    assert lease_limits.allowance(bucket(2.0, max_active=5), 7, NOW) == 0
    assert lease_limits.allowance(bucket(0.0, rate=None, max_active=3), 1, NOW) == 2
    # A token due but for a rounding error counts.
    assert lease_limits.allowance(bucket(0.9999999999999), 0, NOW) == 1


def test_a_new_rate_starts_full_and_an_unchanged_one_keeps_its_tokens():
    previous = bucket(0.25)
    same = lease_limits.stored(previous, "q", LeaseLimits(max_active=3, max_starts_per_second=2.0), NOW)
    assert (same.tokens, same.refilled_at) == (0.25, NOW)
    faster = lease_limits.stored(previous, "q", LeaseLimits(max_starts_per_second=8.0), NOW + timedelta(seconds=1))
    assert faster.tokens == 8.0
    assert lease_limits.stored(previous, "q", LeaseLimits(), NOW) is None


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (LeaseLimits(max_active=0), "max_active"),
        (LeaseLimits(max_active=1_000_001), "max_active"),
        (LeaseLimits(max_starts_per_second=float("nan")), "max_starts_per_second"),
        (LeaseLimits(max_starts_per_second=0.0009), "max_starts_per_second"),
        (LeaseLimits(max_starts_per_second=1e7), "max_starts_per_second"),
    ],
)
def test_out_of_range_limits_name_their_field(limits, field):
    with pytest.raises(InvalidArgument) as raised:
        lease_limits.validate(limits)
    assert raised.value.field == field
