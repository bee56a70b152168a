"""The leader's schedule tick on both backends, on a fake clock: restarts across missed slots,
daylight-saving changes, two leaders at once and a leader that dies mid-tick."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from queue_service.core.errors import ResourceExhausted
from queue_service.core.jobs import JobManager
from queue_service.core.schedules import ScheduleInput, ScheduleManager, ScheduleSettings, ScheduleTick, TickCounts
from queue_service.core.validation import Limits
from queue_service.domain import MisfirePolicy
from queue_service.store.schedules import ScheduleStore


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def job_ids(job_manager: JobManager, queue: str = "reports") -> list[str]:
    with job_manager.database.transaction() as repo:
        rows = repo.connection.exec_driver_sql(
            f"SELECT job_id FROM queue_jobs WHERE queue_name = '{queue}' ORDER BY job_id"
        ).all()
    return [row[0] for row in rows]


def hourly(misfire: MisfirePolicy = MisfirePolicy.SKIP, *, cron: str = "0 * * * *", zone: str = "UTC") -> ScheduleInput:
    return ScheduleInput(
        cron=cron, time_zone=zone, queue_name="reports", job_name="build", job_data={"k": 1}, misfire_policy=misfire
    )


@pytest.fixture
def schedules(job_manager) -> ScheduleManager:
    return ScheduleManager(job_manager)


def test_each_slot_is_enqueued_once_as_time_passes(job_manager, clock, schedules):
    clock.set(utc(2026, 2, 14, 10, 30))
    schedules.create("hourly", hourly(), actor="test")
    tick = ScheduleTick(job_manager)
    for _ in range(3):
        clock.advance(timedelta(minutes=30))
        tick.run_once()
        tick.run_once()
    assert job_ids(job_manager) == [
        "schedule:hourly:2026-02-14T11:00:00Z",
        "schedule:hourly:2026-02-14T12:00:00Z",
    ]
    job = job_manager.get_job("schedule:hourly:2026-02-14T11:00:00Z").job.record
    assert (job.job_name, job.job_data, job.run_at) == ("build", {"k": 1}, utc(2026, 2, 14, 11, 0))


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [
        (MisfirePolicy.SKIP, []),
        (MisfirePolicy.RUN_ONCE, ["schedule:hourly:2026-02-14T15:00:00Z"]),
    ],
)
def test_a_restart_across_missed_slots_follows_the_misfire_policy(job_manager, database, clock, misfire, expected):
    clock.set(utc(2026, 2, 14, 10, 30))
    ScheduleManager(job_manager).create("hourly", hourly(misfire), actor="test")
    # The service is down from 10:30 to 15:20: slots 11:00 to 15:00 pass without a leader. A new
    # process (new managers over the same database) starts then.
    clock.set(utc(2026, 2, 14, 15, 20))
    restarted = JobManager(database, clock)
    counts = ScheduleTick(restarted).run_once()
    assert job_ids(restarted) == expected
    assert counts.skipped == 5 - len(expected)
    assert ScheduleManager(restarted).get("hourly").record.next_run_at == utc(2026, 2, 14, 16, 0)
    clock.set(utc(2026, 2, 14, 16, 0, 10))
    ScheduleTick(restarted).run_once()
    assert job_ids(restarted) == [*expected, "schedule:hourly:2026-02-14T16:00:00Z"]


def test_a_daylight_saving_change_in_the_schedule_zone(job_manager, clock, schedules):
    # New York, 1 November 2026: 02:00 EDT goes back to 01:00 EST. A 01:30 job runs once that night;
    # a 02:30 job on 8 March 2026 (clocks go forward, 02:30 never happens) runs at 03:00 EDT.
    clock.set(utc(2026, 10, 31, 12))
    schedules.create("back", hourly(cron="30 1 * * *", zone="America/New_York"), actor="test")
    tick = ScheduleTick(job_manager)
    for _ in range(3 * 24 * 4):
        clock.advance(timedelta(minutes=15))
        tick.run_once()
    assert job_ids(job_manager) == [
        "schedule:back:2026-11-01T05:30:00Z",  # 01:30 EDT; 01:30 EST an hour later does not run
        "schedule:back:2026-11-02T06:30:00Z",
        "schedule:back:2026-11-03T06:30:00Z",
    ]

    clock.set(utc(2026, 3, 7, 12))
    schedules.create(
        "forward",
        dataclasses.replace(hourly(cron="30 2 * * *", zone="America/New_York"), queue_name="spring"),
        actor="test",
    )
    for _ in range(2 * 24 * 4):
        clock.advance(timedelta(minutes=15))
        tick.run_once()
    assert job_ids(job_manager, "spring") == [
        "schedule:forward:2026-03-08T07:00:00Z",  # 03:00 EDT, when the skipped hour ends
        "schedule:forward:2026-03-09T06:30:00Z",  # 02:30 EDT
    ]


class Crash(Exception):
    """Stands for the process dying: nothing after it in the transaction commits."""


class DyingJobManager(JobManager):
    """Dies while enqueueing the second schedule's job, after its insert, before the commit."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.enqueued = 0

    def enqueue_in(self, repo, spec, now):
        created = super().enqueue_in(repo, spec, now)
        self.enqueued += 1
        if self.enqueued == 2:
            raise Crash
        return created


def test_a_leader_killed_mid_tick_leaves_each_slot_to_its_successor_exactly_once(job_manager, database, clock):
    clock.set(utc(2026, 2, 14, 10, 30))
    for name in ("a-first", "b-second", "c-third"):
        ScheduleManager(job_manager).create(name, hourly(), actor="test")
    clock.set(utc(2026, 2, 14, 11, 0, 5))
    with pytest.raises(Crash):
        ScheduleTick(DyingJobManager(database, clock)).run_once()
    assert job_ids(job_manager) == ["schedule:a-first:2026-02-14T11:00:00Z"]

    clock.advance(timedelta(seconds=20))  # a new leader, elected after the lease lapsed
    counts = ScheduleTick(JobManager(database, clock)).run_once()
    assert counts.enqueued == 2
    assert job_ids(job_manager) == [
        "schedule:a-first:2026-02-14T11:00:00Z",
        "schedule:b-second:2026-02-14T11:00:00Z",
        "schedule:c-third:2026-02-14T11:00:00Z",
    ]


def test_two_leaders_at_once_make_each_slot_once(job_manager, database, clock):
    clock.set(utc(2026, 2, 14, 10, 30))
    ScheduleManager(job_manager).create("hourly", hourly(MisfirePolicy.RUN_ONCE), actor="test")
    clock.set(utc(2026, 2, 14, 11, 0, 5))
    old_leader, new_leader = ScheduleTick(job_manager), ScheduleTick(JobManager(database, clock))
    # Both read the due schedule before either fires it.
    with database.transaction() as repo:
        due = ScheduleStore.of(repo).due(now=clock.now(), limit=10)
    assert new_leader.fire(due[0], clock.now()) is not None
    assert old_leader.fire(due[0], clock.now()) is None
    assert job_ids(job_manager) == ["schedule:hourly:2026-02-14T11:00:00Z"]


def test_paused_schedules_do_not_fire_and_resume_at_the_next_slot(job_manager, clock, schedules):
    clock.set(utc(2026, 2, 14, 10, 30))
    schedules.create("hourly", hourly(MisfirePolicy.RUN_ONCE), actor="test")
    assert schedules.set_paused("hourly", True, actor="test").record.next_run_at is None
    clock.set(utc(2026, 2, 14, 12, 30))
    ScheduleTick(job_manager).run_once()
    assert job_ids(job_manager) == []
    resumed = schedules.set_paused("hourly", False, actor="test")
    assert resumed.upcoming[:2] == [utc(2026, 2, 14, 13, 0), utc(2026, 2, 14, 14, 0)]


def test_changing_the_cron_moves_the_next_slot(job_manager, clock, schedules):
    clock.set(utc(2026, 2, 14, 10, 30))
    schedules.create("hourly", hourly(), actor="test")
    updated = schedules.update("hourly", ScheduleInput(cron="*/5 * * * *"), mask=["cron"], actor="test")
    assert updated.record.next_run_at == utc(2026, 2, 14, 10, 35)
    assert updated.record.definition.job_name == "build"


def test_a_refused_job_passes_its_slot_over_and_the_other_schedules_go_on(job_manager, database, clock):
    clock.set(utc(2026, 2, 14, 10, 30))
    manager = ScheduleManager(job_manager)
    manager.create("a-big", dataclasses.replace(hourly(), job_data={"blob": "x" * 2000}), actor="test")
    manager.create("b-small", hourly(), actor="test")
    # The server restarts with a smaller payload limit than the schedule was saved under.
    strict = JobManager(
        database, clock, dataclasses.replace(job_manager.settings, limits=Limits(max_payload_bytes=1000))
    )
    clock.set(utc(2026, 2, 14, 11, 0, 5))
    counts = ScheduleTick(strict).run_once()
    assert (counts.enqueued, counts.refused) == (1, 1)
    assert job_ids(job_manager) == ["schedule:b-small:2026-02-14T11:00:00Z"]
    assert manager.get("a-big").record.next_run_at == utc(2026, 2, 14, 12, 0)
    assert ScheduleTick(strict).run_once() == TickCounts()


def test_the_number_of_schedules_is_limited(job_manager):
    manager = ScheduleManager(job_manager, ScheduleSettings(max_schedules=2))
    manager.create("one", hourly(), actor="test")
    manager.create("two", hourly(), actor="test")
    with pytest.raises(ResourceExhausted) as raised:
        manager.create("three", hourly(), actor="test")
    assert raised.value.field == "name"
    manager.delete("one", actor="test")
    manager.create("three", hourly(), actor="test")
