"""AdminService: translates admin requests into core calls and results into responses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobqueue.v1 import admin_service_pb2 as pb
from jobqueue.v1 import admin_service_pb2_grpc

from queue_service.api import breaker_convert, convert, schedule_convert
from queue_service.api.errors import translate_all
from queue_service.api.principal import current_actor
from queue_service.api.reply_size import shorten_error_details
from queue_service.core.alert_policies import AlertPolicies
from queue_service.core.audit import AuditLog
from queue_service.core.cancellations import CancellationManager
from queue_service.core.dead_letters import UPDATABLE_FIELDS, DeadLetterManager
from queue_service.core.queues import QueueManager
from queue_service.core.schedules import ScheduleManager
from queue_service.core.sweep.runner import Recovery, Trigger

if TYPE_CHECKING:
    from queue_service.sweeper import SweeperClient


@translate_all
class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        queues: QueueManager,
        dead_letters: DeadLetterManager,
        audit_log: AuditLog,
        recovery: Recovery | SweeperClient,
        scheduler_node_id: str = "",
        schedules: ScheduleManager | None = None,
        alert_policies: AlertPolicies | None = None,
        cancellations: CancellationManager | None = None,
    ) -> None:
        self.queues = queues
        self.cancellations = cancellations or CancellationManager(queues.jobs)
        self.alert_policies = alert_policies or AlertPolicies(
            queues.database, queues.clock, max_name_length=queues.limits.max_name_length
        )
        self.dead_letters = dead_letters
        self.audit_log = audit_log
        self.recovery = recovery
        # The node id under which this replica's scheduler stands for leader (with --workers, the
        # sweeper process's), so that every process of the replica can tell whether it leads;
        # "" when the replica never sweeps on a timer.
        self.scheduler_node_id = scheduler_node_id
        self.schedules = schedules or ScheduleManager(queues.jobs)

    # Statistics

    def GetStatistics(self, request, context):
        return convert.statistics_response(
            self.queues.statistics(list(request.queue_names), max_queues=request.max_queues)
        )

    def GetQueueActivity(self, request, context):
        activity = self.queues.activity(
            list(request.queue_names),
            start=convert.optional_datetime(request, "start_time"),
            end=convert.optional_datetime(request, "end_time"),
            bucket_width=convert.optional_timedelta(request, "bucket_width"),
            period=convert.optional_timedelta(request, "period"),
            max_queues=request.max_queues,
        )
        return convert.activity_response(activity)

    # Dead-letter queue

    def ListDeadLetterJobs(self, request, context):
        page = self.dead_letters.list(
            convert.dead_letter_filter(request.filter), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListDeadLetterJobsResponse(
            entries=[convert.dead_letter_summary_message(entry) for entry in page.items],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    def GetDeadLetterJob(self, request, context):
        details = self.dead_letters.get(request.id)
        return shorten_error_details(
            pb.GetDeadLetterJobResponse(
                entry=convert.dead_letter_message(details.entry),
                job=convert.job_message(details.job) if details.job else None,
                retry_log=[convert.retry_log_message(row) for row in details.retry_log],
                retry_log_omitted_count=details.retry_log_omitted,
            )
        )

    def RetryDeadLetterJob(self, request, context):
        outcome = self.dead_letters.retry(
            request.id,
            actor=current_actor(context),
            retry_policy=convert.optional_policy(request),
            job_data=convert.deliverable_document(request.job_data, "job_data")
            if request.HasField("job_data")
            else None,
        )
        return shorten_error_details(
            pb.RetryDeadLetterJobResponse(
                entry=convert.dead_letter_message(outcome.entry), job=convert.job_message(outcome.job)
            )
        )

    def MarkPermanentlyFailed(self, request, context):
        entry = self.dead_letters.mark_permanently_failed(request.id, request.reason, actor=current_actor(context))
        return shorten_error_details(pb.MarkPermanentlyFailedResponse(entry=convert.dead_letter_message(entry)))

    def UpdateDeadLetterJob(self, request, context):
        changes = convert.dead_letter_changes(request, UPDATABLE_FIELDS)
        entry = self.dead_letters.update(request.entry.id, changes, actor=current_actor(context))
        return shorten_error_details(pb.UpdateDeadLetterJobResponse(entry=convert.dead_letter_message(entry)))

    def ListFailurePatterns(self, request, context):
        page = self.dead_letters.patterns(
            queue_name=request.queue_name,
            recovery_status=convert.enum_value(
                convert.RECOVERY_STATUSES_FROM_PROTO, request.recovery_status, "recovery_status"
            ),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListFailurePatternsResponse(
            patterns=[convert.failure_pattern_message(pattern) for pattern in page.items],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    def RetryDeadLetterJobs(self, request, context):
        progress = self.dead_letters.redrive(
            convert.redrive_request(request), actor=current_actor(context), is_active=context.is_active
        )
        for message in progress:
            yield convert.redrive_progress_message(message)

    # Jobs

    def CancelJobs(self, request, context):
        progress = self.cancellations.cancel_many(
            convert.bulk_cancel_request(request), actor=current_actor(context), is_active=context.is_active
        )
        for message in progress:
            yield convert.bulk_cancel_progress_message(message)

    def ListJobs(self, request, context):
        page = self.queues.list_jobs(
            queue_name=request.queue_name,
            state=convert.enum_value(convert.JOB_STATES_FROM_PROTO, request.state, "state"),
            job_name=request.job_name,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return shorten_error_details(
            pb.ListJobsResponse(
                jobs=[convert.job_message(job, summary=True) for job in page.items],
                next_page_token=page.next_page_token,
                total_size=page.total_size,
            )
        )

    def GetJobDetails(self, request, context):
        details = self.queues.job_details(request.job_id)
        return shorten_error_details(
            pb.GetJobDetailsResponse(
                job=convert.job_message(details.job),
                error_history=[convert.job_error(error) for error in details.job.record.error_history],
                retry_log=[convert.retry_log_message(row) for row in details.retry_log],
                dead_letter_entry=convert.dead_letter_message(details.dead_letter) if details.dead_letter else None,
                retry_log_omitted_count=details.retry_log_omitted,
            )
        )

    def ListRetryLog(self, request, context):
        page = self.queues.retry_log(
            convert.retry_log_query(request), page_size=request.page_size, page_token=request.page_token
        )
        return shorten_error_details(
            pb.ListRetryLogResponse(
                entries=[convert.retry_log_message(row) for row in page.items], next_page_token=page.next_page_token
            )
        )

    # Queues

    def ListQueues(self, request, context):
        page = self.queues.list_queues(page_size=request.page_size, page_token=request.page_token)
        return pb.ListQueuesResponse(
            queues=[convert.queue_message(queue) for queue in page.items], next_page_token=page.next_page_token
        )

    def GetQueue(self, request, context):
        return pb.GetQueueResponse(queue=convert.queue_message(self.queues.get_queue(request.queue_name)))

    def UpdateQueuePolicy(self, request, context):
        queue = self.queues.update_policy(
            request.queue_name,
            convert.policy_override(request.retry_policy),
            limits=convert.lease_limits(request),
            mask=list(request.update_mask.paths),
            allow_missing=request.allow_missing,
            validate_only=request.validate_only,
            actor=current_actor(context),
            breaker=breaker_convert.breaker_policy(request),
        )
        return pb.UpdateQueuePolicyResponse(queue=convert.queue_message(queue))

    def GetQueueAlertPolicy(self, request, context):
        policy = self.alert_policies.get(request.queue_name)
        return pb.GetQueueAlertPolicyResponse(alert_policy=convert.alert_policy_message(policy))

    def UpdateQueueAlertPolicy(self, request, context):
        policy = self.alert_policies.update(convert.alert_policy(request.alert_policy), actor=current_actor(context))
        return pb.UpdateQueueAlertPolicyResponse(alert_policy=convert.alert_policy_message(policy))

    def PauseQueue(self, request, context):
        queue = self.queues.set_paused(
            request.queue_name, True, allow_missing=request.allow_missing, actor=current_actor(context)
        )
        return pb.PauseQueueResponse(queue=convert.queue_message(queue))

    def ResumeQueue(self, request, context):
        queue = self.queues.set_paused(request.queue_name, False, actor=current_actor(context))
        return pb.ResumeQueueResponse(queue=convert.queue_message(queue))

    def CleanQueue(self, request, context):
        deleted = self.queues.clean(
            request.queue_name,
            convert.enum_value(convert.JOB_STATES_FROM_PROTO, request.state, "state"),
            grace=convert.optional_timedelta(request, "grace"),
            recovery_status=convert.enum_value(
                convert.RECOVERY_STATUSES_FROM_PROTO, request.recovery_status, "recovery_status"
            ),
            actor=current_actor(context),
        )
        return pb.CleanQueueResponse(deleted_count=deleted)

    # Recovery

    def TriggerRecovery(self, request, context):
        # Runs in this call; ABORTED (core Aborted) while another sweep runs anywhere.
        run = self.recovery.run_once(Trigger.MANUAL, actor=current_actor(context), caller_waiting=context.is_active)
        return pb.TriggerRecoveryResponse(run=convert.recovery_run_message(run))

    def GetRecoveryStatus(self, request, context):
        # Leadership and the next run come from the database, like the runs: every process of
        # every replica answers alike.
        stats = self.recovery.runs.stats(request.page_size, request.page_token)
        leader = stats.leader
        return convert.recovery_status_response(
            stats, is_leader=bool(leader and self.scheduler_node_id and leader.holder == self.scheduler_node_id)
        )

    # Audit

    def ListAuditEvents(self, request, context):
        page = self.audit_log.list(
            convert.audit_query(request), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAuditEventsResponse(
            events=[convert.audit_event_message(event) for event in page.items], next_page_token=page.next_page_token
        )

    # Schedules

    def CreateSchedule(self, request, context):
        view = self.schedules.create(
            request.schedule.name,
            schedule_convert.schedule_input(request.schedule),
            actor=current_actor(context),
            name_field="schedule.name",
        )
        return pb.CreateScheduleResponse(schedule=schedule_convert.schedule_message(view))

    def ListSchedules(self, request, context):
        page = self.schedules.list(page_size=request.page_size, page_token=request.page_token)
        return pb.ListSchedulesResponse(
            schedules=[schedule_convert.schedule_message(view) for view in page.items],
            next_page_token=page.next_page_token,
        )

    def GetSchedule(self, request, context):
        return pb.GetScheduleResponse(schedule=schedule_convert.schedule_message(self.schedules.get(request.name)))

    def UpdateSchedule(self, request, context):
        view = self.schedules.update(
            request.schedule.name,
            schedule_convert.schedule_input(request.schedule),
            mask=list(request.update_mask.paths),
            actor=current_actor(context),
            name_field="schedule.name",
        )
        return pb.UpdateScheduleResponse(schedule=schedule_convert.schedule_message(view))

    def PauseSchedule(self, request, context):
        view = self.schedules.set_paused(request.name, True, actor=current_actor(context))
        return pb.PauseScheduleResponse(schedule=schedule_convert.schedule_message(view))

    def ResumeSchedule(self, request, context):
        view = self.schedules.set_paused(request.name, False, actor=current_actor(context))
        return pb.ResumeScheduleResponse(schedule=schedule_convert.schedule_message(view))

    def DeleteSchedule(self, request, context):
        self.schedules.delete(request.name, actor=current_actor(context))
        return pb.DeleteScheduleResponse()
