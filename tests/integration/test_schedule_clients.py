"""Schedules through both typed Python AdminClients, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jobqueue import AdminClient, AlreadyExists, InvalidArgument, MisfirePolicy, NotFound, RetryPolicy, Schedule
from jobqueue.aio import AdminClient as AsyncAdminClient

from queue_service.core.schedules import ScheduleTick

NIGHTLY = Schedule(
    name="nightly",
    cron="30 2 * * *",
    time_zone="Europe/Berlin",
    queue_name="reports",
    job_name="build-report",
    job_data={"report": "daily"},
    retry_policy=RetryPolicy(max_retries=2),
    misfire_policy=MisfirePolicy.RUN_ONCE,
)


def test_sync_client_covers_every_schedule_call(service):
    service.clock.set(datetime(2026, 10, 24, 12, tzinfo=UTC))
    with AdminClient(service.target, timeout=10) as admin:
        created = admin.create_schedule(NIGHTLY)
        assert created.misfire_policy is MisfirePolicy.RUN_ONCE and created.job_data == {"report": "daily"}
        assert created.retry_policy == RetryPolicy(max_retries=2)
        # Clocks go back in Berlin on 25 October: 02:30 happens twice and runs once, at 02:30 CEST.
        assert created.next_run_times[:2] == (
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        )
        with pytest.raises(AlreadyExists):
            admin.create_schedule(NIGHTLY)
        with pytest.raises(InvalidArgument) as raised:
            admin.create_schedule(Schedule("bad", "* * *", "UTC", "q", "j"))
        assert raised.value.field == "schedule.cron"
        admin.create_schedule(Schedule("hourly", "0 * * * *", "UTC", "reports", "ping"))
        assert [schedule.name for schedule in admin.list_schedules(page_size=1)] == ["hourly", "nightly"]
        assert admin.get_schedule("hourly").misfire_policy is MisfirePolicy.SKIP

        changed = admin.update_schedule(Schedule("hourly", "*/30 * * * *", "", "", ""), update_mask=["cron"])
        assert (changed.cron, changed.job_name) == ("*/30 * * * *", "ping")
        assert admin.pause_schedule("hourly").paused
        assert admin.resume_schedule("hourly").next_run_times[0] == datetime(2026, 10, 24, 12, 30, tzinfo=UTC)

        service.clock.set(datetime(2026, 10, 24, 12, 30, 1, tzinfo=UTC))
        ScheduleTick(service.server.jobs).run_once()
        assert admin.get_schedule("hourly").last_run_at == datetime(2026, 10, 24, 12, 30, tzinfo=UTC)
        admin.delete_schedule("hourly")
        with pytest.raises(NotFound):
            admin.get_schedule("hourly")
        with pytest.raises(ValueError, match="misfire_policy"):
            admin.create_schedule(Schedule("x", "* * * * *", "UTC", "q", "j", misfire_policy="sometimes"))


@pytest.mark.asyncio
async def test_async_client_covers_every_schedule_call(service):
    service.clock.set(datetime(2026, 2, 14, 10, 30, tzinfo=UTC))
    async with AsyncAdminClient(service.target, timeout=10) as admin:
        created = await admin.create_schedule(NIGHTLY)
        assert created.name == "nightly" and len(created.next_run_times) == 5
        pager = await admin.list_schedules()
        assert [schedule.name async for schedule in pager] == ["nightly"]
        assert (await admin.get_schedule("nightly")).cron == "30 2 * * *"
        updated = await admin.update_schedule(
            Schedule("nightly", "", "America/New_York", "", ""), update_mask=["time_zone"]
        )
        assert updated.time_zone == "America/New_York"
        assert updated.next_run_times[0] == datetime(2026, 2, 15, 7, 30, tzinfo=UTC)
        assert (await admin.pause_schedule("nightly")).next_run_times == ()
        assert not (await admin.resume_schedule("nightly")).paused
        await admin.delete_schedule("nightly")
        with pytest.raises(NotFound):
            await admin.delete_schedule("nightly")
