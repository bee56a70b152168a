/** JobClient: every JobService RPC with typed requests and responses, and typed errors. */

import { randomUUID } from "node:crypto";

import { Connection, type CallSettings, type ConnectionOptions } from "./connection.js";
import { durationFromMs } from "./durations.js";
import { fromStatus, type JobQueueError } from "./errors.js";
import type { Job, JobError, Job_State, RetryPolicy } from "./generated/jobqueue/v1/job.js";
import {
  CancelJobRequest,
  type CancelJobResponse,
  type DeepPartial,
  EnqueueJobRequest,
  type EnqueueJobResponse,
  EnqueueJobsRequest,
  type EnqueueJobsResponse,
  GetJobRequest,
  type GetJobResponse,
  HeartbeatJobRequest,
  type HeartbeatJobResponse,
  JobServiceClient,
  LeaseJobsRequest,
  MoveToDeadLetterRequest,
  type MoveToDeadLetterResponse,
  TrackCompletionRequest,
  type TrackCompletionResponse,
  TrackCompletionsRequest,
  TrackFailureRequest,
  type TrackFailureResponse,
  TrackStartRequest,
  type TrackStartResponse,
} from "./generated/jobqueue/v1/job_service.js";

export const JOB_SERVICE = "jobqueue.v1.JobService";
/**
 * Safe to repeat: enqueue always carries a job_id (generated here when not given) and the
 * service answers a repeated report of the same attempt with the same outcome. Leases and
 * starts are never repeated: each would start another run.
 */
export const JOB_IDEMPOTENT_METHODS = {
  [JOB_SERVICE]: [
    "EnqueueJob",
    "EnqueueJobs",
    "HeartbeatJob",
    "TrackCompletion",
    "TrackCompletions",
    "TrackFailure",
    "GetJob",
    "CancelJob",
  ],
} as const;
/** A long-poll lease may take this much longer than its wait before it counts as late. */
export const LEASE_GRACE_MS = 10_000;

export interface EnqueueOptions extends CallSettings {
  /** Producer-chosen id; generated when absent, so a retried call cannot enqueue twice. */
  jobId?: string;
  priority?: number;
  /** Ready time; give this or `delayMs`, not both. */
  runAt?: Date;
  delayMs?: number;
  retryPolicy?: DeepPartial<RetryPolicy>;
  /**
   * Make the job unique in its queue: while a job with the key counts, enqueue answers with that
   * job and `created` false. A string is the key with the default window and states.
   */
  unique?: string | UniqueEnqueueOptions;
}

/** UniqueOptions of job_service.proto, with the window in milliseconds. */
export interface UniqueEnqueueOptions {
  key: string;
  /** Duplicates count only among jobs enqueued in the same window of this length; absent: any time. */
  windowMs?: number;
  /** States an existing job counts in; absent or empty: WAITING, ACTIVE and FAILED, which any list must hold. */
  states?: Job_State[];
}

function uniqueOptions(unique: string | UniqueEnqueueOptions | undefined) {
  if (unique === undefined) return undefined;
  const options = typeof unique === "string" ? { key: unique } : unique;
  return {
    uniqueKey: options.key,
    window: options.windowMs !== undefined ? durationFromMs(options.windowMs) : undefined,
    states: options.states ?? [],
  };
}

export interface FailureOptions extends CallSettings {
  /** Send the job to the dead-letter queue without retrying. */
  nonRetryable?: boolean;
  /** Replace the computed delay (still within the policy's max_delay). */
  retryAfterMs?: number;
}

/** One completion of a batch: `error` is what trackCompletion would have thrown, if refused. */
export interface CompletionResult {
  jobId: string;
  error?: JobQueueError;
}

function withJobId(request: DeepPartial<EnqueueJobRequest>): EnqueueJobRequest {
  return EnqueueJobRequest.fromPartial({ ...request, jobId: request.jobId || randomUUID() });
}

/**
 * A client of JobService. Options: `target` (one or several replicas), `token`, `tls` (true or
 * own CA and client certificate for mutual TLS), `timeoutMs` (default deadline per call).
 * Every method takes `{ timeoutMs, signal }` last. Failures reject with typed errors
 * (NotFound, FailedPrecondition, InvalidArgument, Unavailable, ...).
 */
export class JobClient {
  readonly connection: Connection;
  readonly stub: JobServiceClient;

  constructor(options: ConnectionOptions = {}) {
    this.connection = new Connection(options, JOB_IDEMPOTENT_METHODS);
    this.stub = new JobServiceClient(
      this.connection.target,
      this.connection.credentials,
      this.connection.channelOptions,
    );
  }

  close(): void {
    this.stub.close();
  }

  // Producers

  /** Add one job; `jobId` is generated when empty, so gRPC may safely repeat the call. */
  enqueueJob(request: DeepPartial<EnqueueJobRequest>, settings?: CallSettings): Promise<EnqueueJobResponse> {
    return this.connection.unary(this.stub.enqueueJob.bind(this.stub), withJobId(request), settings);
  }

  /** Add a job with plain values: `enqueue("emails", "send", { to }, { delayMs: 5000 })`. */
  enqueue(
    queueName: string,
    jobName: string,
    jobData: Record<string, unknown> = {},
    options: EnqueueOptions = {},
  ): Promise<EnqueueJobResponse> {
    if (options.runAt !== undefined && options.delayMs !== undefined) {
      throw new TypeError("give runAt or delayMs, not both");
    }
    const schedule =
      options.runAt !== undefined
        ? { $case: "runAt" as const, value: options.runAt }
        : options.delayMs !== undefined
          ? { $case: "delay" as const, value: durationFromMs(options.delayMs) }
          : undefined;
    return this.enqueueJob(
      {
        queueName,
        jobName,
        jobData,
        jobId: options.jobId,
        priority: options.priority,
        schedule,
        retryPolicy: options.retryPolicy,
        unique: uniqueOptions(options.unique),
      },
      options,
    );
  }

  /** Add several jobs in one transaction: all of them or none. */
  enqueueJobs(request: DeepPartial<EnqueueJobsRequest>, settings?: CallSettings): Promise<EnqueueJobsResponse> {
    const message = EnqueueJobsRequest.fromPartial({
      jobs: (request.jobs ?? []).map((job) => withJobId(job ?? {})),
    });
    return this.connection.unary(this.stub.enqueueJobs.bind(this.stub), message, settings);
  }

  // Workers that lease

  /** Lease up to maxJobs ready jobs; with `wait`, long-poll that long for one to become ready. */
  async leaseJobs(request: DeepPartial<LeaseJobsRequest>, settings: CallSettings = {}): Promise<Job[]> {
    const message = LeaseJobsRequest.fromPartial(request);
    let timeoutMs = settings.timeoutMs === undefined ? this.connection.timeoutMs : settings.timeoutMs;
    if (message.wait !== undefined && timeoutMs !== null) {
      const waitMs = message.wait.seconds * 1000 + message.wait.nanos / 1e6;
      timeoutMs = Math.max(timeoutMs, waitMs + LEASE_GRACE_MS);
    }
    const response = await this.connection.unary(this.stub.leaseJobs.bind(this.stub), message, {
      ...settings,
      timeoutMs,
    });
    return response.jobs;
  }

  /** Extend the lease of the current run. */
  heartbeatJob(request: DeepPartial<HeartbeatJobRequest>, settings?: CallSettings): Promise<HeartbeatJobResponse> {
    return this.connection.unary(
      this.stub.heartbeatJob.bind(this.stub),
      HeartbeatJobRequest.fromPartial(request),
      settings,
    );
  }

  // Workers of another queue system

  /** Record that a run started; an unknown job is created (queueName and jobName needed then). */
  trackStart(request: DeepPartial<TrackStartRequest>, settings?: CallSettings): Promise<TrackStartResponse> {
    return this.connection.unary(this.stub.trackStart.bind(this.stub), TrackStartRequest.fromPartial(request), settings);
  }

  // Reports

  /** Record that the run `attemptNumber` succeeded. */
  trackCompletion(
    request: DeepPartial<TrackCompletionRequest>,
    settings?: CallSettings,
  ): Promise<TrackCompletionResponse> {
    return this.connection.unary(
      this.stub.trackCompletion.bind(this.stub),
      TrackCompletionRequest.fromPartial(request),
      settings,
    );
  }

  /**
   * Record up to 1000 successful runs in one call; one result per run, in order. A refused
   * completion carries the error trackCompletion would have thrown; the others still count.
   */
  async trackCompletions(
    request: DeepPartial<TrackCompletionsRequest>,
    settings?: CallSettings,
  ): Promise<CompletionResult[]> {
    const response = await this.connection.unary(
      this.stub.trackCompletions.bind(this.stub),
      TrackCompletionsRequest.fromPartial(request),
      settings,
    );
    return response.results.map((result) =>
      result.status && result.status.code !== 0
        ? { jobId: result.jobId, error: fromStatus(result.status) }
        : { jobId: result.jobId },
    );
  }

  /** Record that a run failed, and get the service's binding retry decision. */
  trackFailure(request: DeepPartial<TrackFailureRequest>, settings?: CallSettings): Promise<TrackFailureResponse> {
    return this.connection.unary(
      this.stub.trackFailure.bind(this.stub),
      TrackFailureRequest.fromPartial(request),
      settings,
    );
  }

  /** Report a failed run from an error: its name, message and stack. */
  reportFailure(
    jobId: string,
    attemptNumber: number,
    error: DeepPartial<JobError>,
    options: FailureOptions = {},
  ): Promise<TrackFailureResponse> {
    return this.trackFailure(
      {
        jobId,
        attemptNumber,
        error,
        nonRetryable: options.nonRetryable ?? false,
        retryAfter: options.retryAfterMs === undefined ? undefined : durationFromMs(options.retryAfterMs),
      },
      options,
    );
  }

  /** Send a waiting, active or failed job to the dead-letter queue now. */
  moveToDeadLetter(
    request: DeepPartial<MoveToDeadLetterRequest>,
    settings?: CallSettings,
  ): Promise<MoveToDeadLetterResponse> {
    return this.connection.unary(
      this.stub.moveToDeadLetter.bind(this.stub),
      MoveToDeadLetterRequest.fromPartial(request),
      settings,
    );
  }

  /**
   * Cancel a job: a waiting or failed one is CANCELLED at once; a running one stays ACTIVE with
   * cancelRequestedAt set, its worker learns it at the next heartbeat (cancelRequested), and the
   * run's report ends it CANCELLED. Cancelling again changes nothing.
   */
  cancelJob(request: DeepPartial<CancelJobRequest>, settings?: CallSettings): Promise<CancelJobResponse> {
    return this.connection.unary(this.stub.cancelJob.bind(this.stub), CancelJobRequest.fromPartial(request), settings);
  }

  // Reads

  /** A job with its error history and retry log. */
  getJob(jobId: string, settings?: CallSettings): Promise<GetJobResponse> {
    return this.connection.unary(this.stub.getJob.bind(this.stub), GetJobRequest.fromPartial({ jobId }), settings);
  }
}
