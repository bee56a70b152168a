"""Cron slot arithmetic: daylight-saving changes, missed slots, bad expressions and zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queue_service.core.errors import InvalidArgument
from queue_service.core.schedules import CronSchedule, plan_due_slots, slot_job_id
from queue_service.domain import MisfirePolicy

GRACE = timedelta(minutes=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_daily_slot_in_a_skipped_hour_fires_once_when_the_gap_ends():
    # Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist.
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    assert schedule.slots(utc(2026, 3, 27, 12), 4) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # the gap ends: 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_times_skipped_by_clocks_going_forward_fire_together_once():
    schedule = CronSchedule.parse("*/20 * * * *", "Europe/Berlin")
    assert schedule.slots(utc(2026, 3, 29, 0, 30), 4) == [
        utc(2026, 3, 29, 0, 40),  # 01:40 CET
        utc(2026, 3, 29, 1, 0),  # 02:00, 02:20, 02:40 skipped, and 03:00 CEST itself
        utc(2026, 3, 29, 1, 20),
        utc(2026, 3, 29, 1, 40),
    ]


def test_a_half_hour_change_ends_its_gap_on_the_half_hour():
    # Lord Howe Island, 4 October 2026: 02:00 (+10:30) jumps to 02:30 (+11:00).
    schedule = CronSchedule.parse("15 2 * * *", "Australia/Lord_Howe")
    assert [
        slot.astimezone(schedule.zone).strftime("%d %H:%M %z") for slot in schedule.slots(utc(2026, 10, 2, 12), 3)
    ] == [
        "03 02:15 +1030",
        "04 02:30 +1100",
        "05 02:15 +1100",
    ]


def test_a_repeated_wall_time_fires_at_its_first_occurrence_only():
    # Berlin, 25 October 2026: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30 happens twice.
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    assert schedule.slots(utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
    ]
    hourly = CronSchedule.parse("0 * * * *", "Europe/Berlin")
    assert hourly.slots(utc(2026, 10, 24, 23, 30), 3) == [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        utc(2026, 10, 25, 2, 0),  # 03:00 CET; 02:00 CET repeats a wall time already fired
        utc(2026, 10, 25, 3, 0),
    ]


def test_slots_strictly_increase_across_a_year_of_changes():
    schedule = CronSchedule.parse("*/15 * * * *", "America/New_York")
    slots = schedule.slots(utc(2026, 1, 1), 4 * 24 * 366)
    assert all(earlier < later for earlier, later in zip(slots, slots[1:], strict=False))


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("0", ["Sun"] * 3),
        ("7", ["Sun"] * 3),
        ("sun", ["Sun"] * 3),
        ("1-5", ["Mon", "Tue", "Wed"]),
        ("*/2", ["Sun", "Tue", "Thu"]),
        ("5,6", ["Fri", "Sat", "Fri"]),
    ],
)
def test_weekday_numbers_count_from_sunday_as_in_crontab(weekday, days):
    schedule = CronSchedule.parse(f"0 9 * * {weekday}", "UTC")
    assert [slot.strftime("%a") for slot in schedule.slots(utc(2026, 2, 14, 12), 3)] == days  # a Saturday


def test_day_of_month_and_weekday_together_match_either_as_in_crontab():
    schedule = CronSchedule.parse("0 0 1 * 1", "UTC")  # the 1st, and every Monday
    assert schedule.slots(utc(2026, 2, 20), 3) == [utc(2026, 2, 23), utc(2026, 3, 1), utc(2026, 3, 2)]


def test_latest_slot_is_found_without_walking_every_missed_one():
    schedule = CronSchedule.parse("* * * * *", "UTC")
    first = utc(2025, 1, 1)
    assert schedule.latest_slot(first, utc(2026, 1, 1, 7, 3, 59)) == utc(2026, 1, 1, 7, 3)


@pytest.mark.parametrize(
    ("misfire", "enqueued"),
    [(MisfirePolicy.SKIP, None), (MisfirePolicy.RUN_ONCE, utc(2026, 2, 14, 15, 0))],
)
def test_several_missed_slots_give_at_most_one_job(misfire, enqueued):
    schedule = CronSchedule.parse("0 * * * *", "UTC")
    plan = plan_due_slots(schedule, utc(2026, 2, 14, 11, 0), utc(2026, 2, 14, 15, 30), misfire, GRACE)
    assert plan.enqueue == enqueued
    assert plan.skipped == (5 if enqueued is None else 4)
    assert plan.next_run_at == utc(2026, 2, 14, 16, 0)


def test_a_slot_within_the_grace_runs_under_skip():
    schedule = CronSchedule.parse("0 * * * *", "UTC")
    plan = plan_due_slots(schedule, utc(2026, 2, 14, 11, 0), utc(2026, 2, 14, 11, 0, 30), MisfirePolicy.SKIP, GRACE)
    assert (plan.enqueue, plan.skipped) == (utc(2026, 2, 14, 11, 0), 0)
    assert (
        plan_due_slots(schedule, utc(2026, 2, 14, 12, 0), utc(2026, 2, 14, 11, 59), MisfirePolicy.SKIP, GRACE) is None
    )


def test_job_ids_name_the_schedule_and_the_slot_in_utc():
    assert slot_job_id(
        "nightly", datetime(2026, 3, 29, 3, 0, tzinfo=CronSchedule.parse("* * * * *", "Europe/Berlin").zone)
    ) == ("schedule:nightly:2026-03-29T01:00:00Z")


@pytest.mark.parametrize(
    ("cron", "zone", "field"),
    [
        ("", "UTC", "cron"),
        ("61 * * * *", "UTC", "cron"),
        ("* * *", "UTC", "cron"),
        ("* * * * * * *", "UTC", "cron"),
        ("0 0 * * 8", "UTC", "cron"),
        ("0 0 * * 5-2", "UTC", "cron"),
        ("0 0 30 2 *", "UTC", "cron"),  # never fires
        ("x" * 300, "UTC", "cron"),
        ("* * * * *\x00", "UTC", "cron"),
        ("* * * * *", "", "time_zone"),
        ("* * * * *", "Mars/Olympus", "time_zone"),
        ("* * * * *", "../../etc/passwd", "time_zone"),
        ("* * * * *", "/etc/localtime", "time_zone"),
        ("* * * * *", "Europe/Berlin\x00", "time_zone"),
    ],
)
def test_bad_expressions_and_zones_name_their_field(cron, zone, field):
    with pytest.raises(InvalidArgument) as raised:
        CronSchedule.parse(cron, zone)
    assert raised.value.field == field
