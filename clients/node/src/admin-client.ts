/** AdminClient: every AdminService RPC with typed requests and responses, and typed errors. */

import { Connection, type CallSettings, type ConnectionOptions } from "./connection.js";
import {
  AdminServiceClient,
  type DeepPartial,
  GetStatisticsRequest,
  type GetStatisticsResponse,
  GetQueueActivityRequest,
  type GetQueueActivityResponse,
  ListDeadLetterJobsRequest,
  type ListDeadLetterJobsResponse,
  GetDeadLetterJobRequest,
  type GetDeadLetterJobResponse,
  RetryDeadLetterJobRequest,
  type RetryDeadLetterJobResponse,
  MarkPermanentlyFailedRequest,
  type MarkPermanentlyFailedResponse,
  UpdateDeadLetterJobRequest,
  type UpdateDeadLetterJobResponse,
  ListFailurePatternsRequest,
  type ListFailurePatternsResponse,
  ListJobsRequest,
  type ListJobsResponse,
  GetJobDetailsRequest,
  type GetJobDetailsResponse,
  ListRetryLogRequest,
  type ListRetryLogResponse,
  ListQueuesRequest,
  type ListQueuesResponse,
  GetQueueRequest,
  type GetQueueResponse,
  UpdateQueuePolicyRequest,
  type UpdateQueuePolicyResponse,
  GetQueueAlertPolicyRequest,
  type GetQueueAlertPolicyResponse,
  UpdateQueueAlertPolicyRequest,
  type UpdateQueueAlertPolicyResponse,
  PauseQueueRequest,
  type PauseQueueResponse,
  ResumeQueueRequest,
  type ResumeQueueResponse,
  CleanQueueRequest,
  type CleanQueueResponse,
  TriggerRecoveryRequest,
  type TriggerRecoveryResponse,
  GetRecoveryStatusRequest,
  type GetRecoveryStatusResponse,
  ListAuditEventsRequest,
  type ListAuditEventsResponse,
  RetryDeadLetterJobsRequest,
  type RetryDeadLetterJobsResponse,
  CancelJobsRequest,
  type CancelJobsResponse,
  CreateScheduleRequest,
  type CreateScheduleResponse,
  ListSchedulesRequest,
  type ListSchedulesResponse,
  GetScheduleRequest,
  type GetScheduleResponse,
  UpdateScheduleRequest,
  type UpdateScheduleResponse,
  PauseScheduleRequest,
  type PauseScheduleResponse,
  ResumeScheduleRequest,
  type ResumeScheduleResponse,
  DeleteScheduleRequest,
  type DeleteScheduleResponse,
} from "./generated/jobqueue/v1/admin_service.js";

export const ADMIN_SERVICE = "jobqueue.v1.AdminService";
/**
 * Reads, and writes that set a value (repeating them changes nothing more). Retrying, marking,
 * cleaning, redriving and triggering act again on each call, so they are never repeated.
 */
export const ADMIN_IDEMPOTENT_METHODS = {
  [ADMIN_SERVICE]: [
    "GetStatistics",
    "GetQueueActivity",
    "ListDeadLetterJobs",
    "GetDeadLetterJob",
    "UpdateDeadLetterJob",
    "ListFailurePatterns",
    "ListJobs",
    "GetJobDetails",
    "ListRetryLog",
    "ListQueues",
    "GetQueue",
    "UpdateQueuePolicy",
    "PauseQueue",
    "ResumeQueue",
    "GetRecoveryStatus",
    "ListAuditEvents",
    "ListSchedules",
    "GetSchedule",
    "UpdateSchedule",
    "PauseSchedule",
    "ResumeSchedule",
  ],
} as const;

/** A client of AdminService (an `admin` token); options as for JobClient. */
export class AdminClient {
  readonly connection: Connection;
  readonly stub: AdminServiceClient;

  constructor(options: ConnectionOptions = {}) {
    this.connection = new Connection(options, ADMIN_IDEMPOTENT_METHODS);
    this.stub = new AdminServiceClient(
      this.connection.target,
      this.connection.credentials,
      this.connection.channelOptions,
    );
  }

  close(): void {
    this.stub.close();
  }

  /** Per-queue job counts by state, paused flags and dead-letter summaries. */
  getStatistics(request: DeepPartial<GetStatisticsRequest> = {}, settings?: CallSettings): Promise<GetStatisticsResponse> {
    return this.connection.unary(this.stub.getStatistics.bind(this.stub), GetStatisticsRequest.fromPartial(request), settings);
  }

  /** Completed, failed, retried and dead-lettered jobs per queue in time buckets. */
  getQueueActivity(request: DeepPartial<GetQueueActivityRequest> = {}, settings?: CallSettings): Promise<GetQueueActivityResponse> {
    return this.connection.unary(this.stub.getQueueActivity.bind(this.stub), GetQueueActivityRequest.fromPartial(request), settings);
  }

  /** A page of dead-letter entries, highest triage priority first. */
  listDeadLetterJobs(request: DeepPartial<ListDeadLetterJobsRequest> = {}, settings?: CallSettings): Promise<ListDeadLetterJobsResponse> {
    return this.connection.unary(this.stub.listDeadLetterJobs.bind(this.stub), ListDeadLetterJobsRequest.fromPartial(request), settings);
  }

  /** One dead-letter entry with its error history, job and retry log. */
  getDeadLetterJob(request: DeepPartial<GetDeadLetterJobRequest> = {}, settings?: CallSettings): Promise<GetDeadLetterJobResponse> {
    return this.connection.unary(this.stub.getDeadLetterJob.bind(this.stub), GetDeadLetterJobRequest.fromPartial(request), settings);
  }

  /** Send a PENDING entry's job back to its queue with a fresh retry budget. */
  retryDeadLetterJob(request: DeepPartial<RetryDeadLetterJobRequest> = {}, settings?: CallSettings): Promise<RetryDeadLetterJobResponse> {
    return this.connection.unary(this.stub.retryDeadLetterJob.bind(this.stub), RetryDeadLetterJobRequest.fromPartial(request), settings);
  }

  /** Give up on a PENDING entry for good. */
  markPermanentlyFailed(request: DeepPartial<MarkPermanentlyFailedRequest> = {}, settings?: CallSettings): Promise<MarkPermanentlyFailedResponse> {
    return this.connection.unary(this.stub.markPermanentlyFailed.bind(this.stub), MarkPermanentlyFailedRequest.fromPartial(request), settings);
  }

  /** Update an entry's triage fields named by updateMask. */
  updateDeadLetterJob(request: DeepPartial<UpdateDeadLetterJobRequest> = {}, settings?: CallSettings): Promise<UpdateDeadLetterJobResponse> {
    return this.connection.unary(this.stub.updateDeadLetterJob.bind(this.stub), UpdateDeadLetterJobRequest.fromPartial(request), settings);
  }

  /** Dead-letter entries grouped by error fingerprint. */
  listFailurePatterns(request: DeepPartial<ListFailurePatternsRequest> = {}, settings?: CallSettings): Promise<ListFailurePatternsResponse> {
    return this.connection.unary(this.stub.listFailurePatterns.bind(this.stub), ListFailurePatternsRequest.fromPartial(request), settings);
  }

  /** Jobs by queue and state, most recently changed first. */
  listJobs(request: DeepPartial<ListJobsRequest> = {}, settings?: CallSettings): Promise<ListJobsResponse> {
    return this.connection.unary(this.stub.listJobs.bind(this.stub), ListJobsRequest.fromPartial(request), settings);
  }

  /** A job with its error history, retry log and dead-letter entry. */
  getJobDetails(request: DeepPartial<GetJobDetailsRequest> = {}, settings?: CallSettings): Promise<GetJobDetailsResponse> {
    return this.connection.unary(this.stub.getJobDetails.bind(this.stub), GetJobDetailsRequest.fromPartial(request), settings);
  }

  /** Retry decisions by job or queue and time range, newest first. */
  listRetryLog(request: DeepPartial<ListRetryLogRequest> = {}, settings?: CallSettings): Promise<ListRetryLogResponse> {
    return this.connection.unary(this.stub.listRetryLog.bind(this.stub), ListRetryLogRequest.fromPartial(request), settings);
  }

  /** Known queues with their policies and paused flags. */
  listQueues(request: DeepPartial<ListQueuesRequest> = {}, settings?: CallSettings): Promise<ListQueuesResponse> {
    return this.connection.unary(this.stub.listQueues.bind(this.stub), ListQueuesRequest.fromPartial(request), settings);
  }

  /** One queue with its own and its effective retry policy. */
  getQueue(request: DeepPartial<GetQueueRequest> = {}, settings?: CallSettings): Promise<GetQueueResponse> {
    return this.connection.unary(this.stub.getQueue.bind(this.stub), GetQueueRequest.fromPartial(request), settings);
  }

  /** Set a queue's retry policy. */
  updateQueuePolicy(request: DeepPartial<UpdateQueuePolicyRequest> = {}, settings?: CallSettings): Promise<UpdateQueuePolicyResponse> {
    return this.connection.unary(this.stub.updateQueuePolicy.bind(this.stub), UpdateQueuePolicyRequest.fromPartial(request), settings);
  }

  /** A queue's alert policy: its DLQ alert threshold and email recipients. */
  getQueueAlertPolicy(request: DeepPartial<GetQueueAlertPolicyRequest> = {}, settings?: CallSettings): Promise<GetQueueAlertPolicyResponse> {
    return this.connection.unary(this.stub.getQueueAlertPolicy.bind(this.stub), GetQueueAlertPolicyRequest.fromPartial(request), settings);
  }

  /** Replace a queue's alert policy. */
  updateQueueAlertPolicy(request: DeepPartial<UpdateQueueAlertPolicyRequest> = {}, settings?: CallSettings): Promise<UpdateQueueAlertPolicyResponse> {
    return this.connection.unary(this.stub.updateQueueAlertPolicy.bind(this.stub), UpdateQueueAlertPolicyRequest.fromPartial(request), settings);
  }

  /** Stop leasing from a queue. */
  pauseQueue(request: DeepPartial<PauseQueueRequest> = {}, settings?: CallSettings): Promise<PauseQueueResponse> {
    return this.connection.unary(this.stub.pauseQueue.bind(this.stub), PauseQueueRequest.fromPartial(request), settings);
  }

  /** Let workers lease from a paused queue again. */
  resumeQueue(request: DeepPartial<ResumeQueueRequest> = {}, settings?: CallSettings): Promise<ResumeQueueResponse> {
    return this.connection.unary(this.stub.resumeQueue.bind(this.stub), ResumeQueueRequest.fromPartial(request), settings);
  }

  /** Delete a queue's jobs in one state older than a grace period. */
  cleanQueue(request: DeepPartial<CleanQueueRequest> = {}, settings?: CallSettings): Promise<CleanQueueResponse> {
    return this.connection.unary(this.stub.cleanQueue.bind(this.stub), CleanQueueRequest.fromPartial(request), settings);
  }

  /** Run a recovery sweep now and return its summary. */
  triggerRecovery(request: DeepPartial<TriggerRecoveryRequest> = {}, settings?: CallSettings): Promise<TriggerRecoveryResponse> {
    return this.connection.unary(this.stub.triggerRecovery.bind(this.stub), TriggerRecoveryRequest.fromPartial(request), settings);
  }

  /** Recovery scheduler totals, leadership, next run and recent runs. */
  getRecoveryStatus(request: DeepPartial<GetRecoveryStatusRequest> = {}, settings?: CallSettings): Promise<GetRecoveryStatusResponse> {
    return this.connection.unary(this.stub.getRecoveryStatus.bind(this.stub), GetRecoveryStatusRequest.fromPartial(request), settings);
  }

  /** Audit events of admin actions, newest first. */
  listAuditEvents(request: DeepPartial<ListAuditEventsRequest> = {}, settings?: CallSettings): Promise<ListAuditEventsResponse> {
    return this.connection.unary(this.stub.listAuditEvents.bind(this.stub), ListAuditEventsRequest.fromPartial(request), settings);
  }

  /**
   * Bulk redrive: retries every PENDING entry a selector matches and yields progress; the last
   * message has done = true. No default deadline: a rate-limited redrive may take long.
   */
  retryDeadLetterJobs(
    request: DeepPartial<RetryDeadLetterJobsRequest>,
    settings: CallSettings = {},
  ): AsyncGenerator<RetryDeadLetterJobsResponse> {
    return this.connection.stream(
      this.stub.retryDeadLetterJobs.bind(this.stub),
      RetryDeadLetterJobsRequest.fromPartial(request),
      { timeoutMs: null, ...settings },
    );
  }

  /**
   * Bulk cancel: every job matching `filter` (by default WAITING, FAILED and ACTIVE), or the listed
   * `ids`, each as JobClient.cancelJob does; yields progress, the last message has done = true.
   * No default deadline: a rate-limited cancel may take long.
   */
  cancelJobs(request: DeepPartial<CancelJobsRequest>, settings: CallSettings = {}): AsyncGenerator<CancelJobsResponse> {
    return this.connection.stream(
      this.stub.cancelJobs.bind(this.stub),
      CancelJobsRequest.fromPartial(request),
      { timeoutMs: null, ...settings },
    );
  }
  /** Create a cron schedule; ALREADY_EXISTS if the name is taken. */
  createSchedule(request: DeepPartial<CreateScheduleRequest> = {}, settings?: CallSettings): Promise<CreateScheduleResponse> {
    return this.connection.unary(this.stub.createSchedule.bind(this.stub), CreateScheduleRequest.fromPartial(request), settings);
  }

  /** Schedules by name, each with its next run times. */
  listSchedules(request: DeepPartial<ListSchedulesRequest> = {}, settings?: CallSettings): Promise<ListSchedulesResponse> {
    return this.connection.unary(this.stub.listSchedules.bind(this.stub), ListSchedulesRequest.fromPartial(request), settings);
  }

  /** One schedule with its next run times. */
  getSchedule(request: DeepPartial<GetScheduleRequest> = {}, settings?: CallSettings): Promise<GetScheduleResponse> {
    return this.connection.unary(this.stub.getSchedule.bind(this.stub), GetScheduleRequest.fromPartial(request), settings);
  }

  /** Change a schedule's fields named by update_mask. */
  updateSchedule(request: DeepPartial<UpdateScheduleRequest> = {}, settings?: CallSettings): Promise<UpdateScheduleResponse> {
    return this.connection.unary(this.stub.updateSchedule.bind(this.stub), UpdateScheduleRequest.fromPartial(request), settings);
  }

  /** Stop a schedule from enqueueing jobs. */
  pauseSchedule(request: DeepPartial<PauseScheduleRequest> = {}, settings?: CallSettings): Promise<PauseScheduleResponse> {
    return this.connection.unary(this.stub.pauseSchedule.bind(this.stub), PauseScheduleRequest.fromPartial(request), settings);
  }

  /** Start a paused schedule again at its next slot. */
  resumeSchedule(request: DeepPartial<ResumeScheduleRequest> = {}, settings?: CallSettings): Promise<ResumeScheduleResponse> {
    return this.connection.unary(this.stub.resumeSchedule.bind(this.stub), ResumeScheduleRequest.fromPartial(request), settings);
  }

  /** Delete a schedule; the jobs it enqueued stay. */
  deleteSchedule(request: DeepPartial<DeleteScheduleRequest> = {}, settings?: CallSettings): Promise<DeleteScheduleResponse> {
    return this.connection.unary(this.stub.deleteSchedule.bind(this.stub), DeleteScheduleRequest.fromPartial(request), settings);
  }
}
