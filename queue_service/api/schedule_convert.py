"""Schedule messages to core inputs and back."""

from __future__ import annotations

from jobqueue.v1 import admin_service_pb2 as admin_pb

from queue_service.api.convert import (
    document,
    enum_value,
    policy_override,
    retry_policy_message,
    struct,
    timestamp,
)
from queue_service.core.schedules import ScheduleInput, ScheduleView
from queue_service.domain import MisfirePolicy

MISFIRE_POLICIES = {
    MisfirePolicy.SKIP: admin_pb.Schedule.MISFIRE_POLICY_SKIP,
    MisfirePolicy.RUN_ONCE: admin_pb.Schedule.MISFIRE_POLICY_RUN_ONCE,
}
MISFIRE_POLICIES_FROM_PROTO = {value: key for key, value in MISFIRE_POLICIES.items()}


def schedule_input(message: admin_pb.Schedule, prefix: str = "schedule.") -> ScheduleInput:
    return ScheduleInput(
        cron=message.cron,
        time_zone=message.time_zone,
        queue_name=message.queue_name,
        job_name=message.job_name,
        job_data=document(message.job_data, f"{prefix}job_data") if message.HasField("job_data") else None,
        retry_policy=(
            policy_override(message.retry_policy, f"{prefix}retry_policy") if message.HasField("retry_policy") else None
        ),
        misfire_policy=enum_value(MISFIRE_POLICIES_FROM_PROTO, message.misfire_policy, f"{prefix}misfire_policy"),
    )


def schedule_message(view: ScheduleView) -> admin_pb.Schedule:
    record = view.record
    definition = record.definition
    return admin_pb.Schedule(
        name=record.name,
        cron=definition.cron,
        time_zone=definition.time_zone,
        queue_name=definition.queue_name,
        job_name=definition.job_name,
        job_data=struct(definition.job_data),
        retry_policy=retry_policy_message(definition.retry_policy),
        misfire_policy=MISFIRE_POLICIES[definition.misfire_policy],
        paused=record.paused,
        next_run_times=[timestamp(moment) for moment in view.upcoming],
        last_run_at=timestamp(record.last_run_at),
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
    )
