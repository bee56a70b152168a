"""Schedules over gRPC on both backends: create, list with pages, get, update with a mask, pause,
resume, delete, bad input naming its field, and the leader's tick enqueueing through the server."""

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.core.schedules import ScheduleTick
from tests.integration.admin_helpers import bad_field, rpc_error

SKIP = admin.Schedule.MISFIRE_POLICY_SKIP
RUN_ONCE = admin.Schedule.MISFIRE_POLICY_RUN_ONCE


def nightly(name="nightly", **overrides) -> admin.Schedule:
    data = struct_pb2.Struct()
    data.update({"report": "daily"})
    fields = {
        "name": name,
        "cron": "30 2 * * *",
        "time_zone": "Europe/Berlin",
        "queue_name": "reports",
        "job_name": "build-report",
        "job_data": data,
        "retry_policy": job_pb2.RetryPolicy(max_retries=2),
        "misfire_policy": RUN_ONCE,
    }
    fields.update(overrides)
    return admin.Schedule(**fields)


def ts(message) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def test_create_get_list_and_next_run_times(service):
    service.clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    created = service.admin.CreateSchedule(admin.CreateScheduleRequest(schedule=nightly())).schedule
    assert (created.name, created.cron, created.time_zone, created.misfire_policy) == (
        "nightly",
        "30 2 * * *",
        "Europe/Berlin",
        RUN_ONCE,
    )
    assert created.retry_policy.max_retries == 2 and dict(created.job_data) == {"report": "daily"}
    assert [ts(moment) for moment in created.next_run_times[:3]] == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:30 does not exist that night: 03:00 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    assert service.admin.GetSchedule(admin.GetScheduleRequest(name="nightly")).schedule == created

    error = rpc_error(service.admin.CreateSchedule, admin.CreateScheduleRequest(schedule=nightly()))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and bad_field(error) == "schedule.name"

    for index in range(4):
        service.admin.CreateSchedule(admin.CreateScheduleRequest(schedule=nightly(f"s{index}", misfire_policy=0)))
    first = service.admin.ListSchedules(admin.ListSchedulesRequest(page_size=3))
    second = service.admin.ListSchedules(admin.ListSchedulesRequest(page_size=3, page_token=first.next_page_token))
    assert [s.name for s in first.schedules] + [s.name for s in second.schedules] == ["nightly", "s0", "s1", "s2", "s3"]
    assert second.next_page_token == ""
    assert second.schedules[-1].misfire_policy == SKIP


def test_update_pause_resume_delete(service):
    service.clock.set(datetime(2026, 2, 14, 10, 30, tzinfo=UTC))
    service.admin.CreateSchedule(admin.CreateScheduleRequest(schedule=nightly()))
    updated = service.admin.UpdateSchedule(
        admin.UpdateScheduleRequest(
            schedule=admin.Schedule(name="nightly", cron="*/10 * * * *", job_name="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["cron"]),
        )
    ).schedule
    assert updated.cron == "*/10 * * * *" and updated.job_name == "build-report"
    assert ts(updated.next_run_times[0]) == datetime(2026, 2, 14, 10, 40, tzinfo=UTC)

    paused = service.admin.PauseSchedule(admin.PauseScheduleRequest(name="nightly")).schedule
    assert paused.paused and list(paused.next_run_times) == []
    assert service.admin.PauseSchedule(admin.PauseScheduleRequest(name="nightly")).schedule.paused
    service.clock.set(datetime(2026, 2, 14, 11, 5, tzinfo=UTC))
    resumed = service.admin.ResumeSchedule(admin.ResumeScheduleRequest(name="nightly")).schedule
    assert not resumed.paused and ts(resumed.next_run_times[0]) == datetime(2026, 2, 14, 11, 10, tzinfo=UTC)

    service.admin.DeleteSchedule(admin.DeleteScheduleRequest(name="nightly"))
    error = rpc_error(service.admin.GetSchedule, admin.GetScheduleRequest(name="nightly"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and bad_field(error) == "name"
    error = rpc_error(service.admin.DeleteSchedule, admin.DeleteScheduleRequest(name="nightly"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_the_tick_enqueues_the_slot_job_that_workers_lease(service):
    service.clock.set(datetime(2026, 2, 14, 10, 30, tzinfo=UTC))
    service.admin.CreateSchedule(admin.CreateScheduleRequest(schedule=nightly(cron="0 11 * * *", time_zone="UTC")))
    tick = ScheduleTick(service.server.jobs, service.server.schedules.settings)
    tick.run_once()
    service.clock.set(datetime(2026, 2, 14, 11, 0, 2, tzinfo=UTC))
    assert tick.run_once().enqueued == 1
    assert tick.run_once().enqueued == 0
    leased = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["reports"], worker_id="w", max_jobs=5)).jobs
    assert [(job.job_id, job.job_name) for job in leased] == [("schedule:nightly:2026-02-14T11:00:00Z", "build-report")]
    assert leased[0].retry_policy.max_retries == 2
    got = service.admin.GetSchedule(admin.GetScheduleRequest(name="nightly")).schedule
    assert ts(got.last_run_at) == datetime(2026, 2, 14, 11, 0, tzinfo=UTC)
    assert ts(got.next_run_times[0]) == datetime(2026, 2, 15, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (nightly(name=""), "schedule.name"),
        (nightly(name="x" * 101), "schedule.name"),
        (nightly(cron="61 * * * *"), "schedule.cron"),
        (nightly(cron="0 0 31 2 *"), "schedule.cron"),
        (nightly(cron=""), "schedule.cron"),
        (nightly(time_zone="Nowhere/City"), "schedule.time_zone"),
        (nightly(time_zone=""), "schedule.time_zone"),
        (nightly(queue_name=""), "schedule.queue_name"),
        (nightly(job_name=""), "schedule.job_name"),
        (nightly(misfire_policy=7), "schedule.misfire_policy"),
        (nightly(retry_policy=job_pb2.RetryPolicy(max_retries=-1)), "schedule.retry_policy.max_retries"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(service, schedule, field):
    error = rpc_error(service.admin.CreateSchedule, admin.CreateScheduleRequest(schedule=schedule))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_field(error) == field
    assert service.admin.ListSchedules(admin.ListSchedulesRequest()).schedules == []


def test_bad_updates_name_the_field(service):
    service.admin.CreateSchedule(admin.CreateScheduleRequest(schedule=nightly()))
    error = rpc_error(
        service.admin.UpdateSchedule,
        admin.UpdateScheduleRequest(
            schedule=admin.Schedule(name="nightly", time_zone="Mars/Base"),
            update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "schedule.time_zone"
    error = rpc_error(
        service.admin.UpdateSchedule,
        admin.UpdateScheduleRequest(
            schedule=admin.Schedule(name="nightly"), update_mask=field_mask_pb2.FieldMask(paths=["paused"])
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "update_mask"
    error = rpc_error(service.admin.ListSchedules, admin.ListSchedulesRequest(page_size=-1))
    assert bad_field(error) == "page_size"
    unchanged = service.admin.GetSchedule(admin.GetScheduleRequest(name="nightly")).schedule
    assert unchanged.time_zone == "Europe/Berlin"
