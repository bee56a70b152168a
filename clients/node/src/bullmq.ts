/**
 * Run tracking for BullMQ: wraps a Worker's processor so that each run is reported to the
 * queue service (TrackStart, then TrackCompletion or TrackFailure, heartbeats in between),
 * and makes the service's retry decision binding on BullMQ.
 *
 * - A retry decision fails the run with a delay the worker's `backoffStrategy` returns exactly.
 * - A dead-letter decision fails it with UnrecoverableError: BullMQ does not run it again.
 * - A report the service refuses (a stale attempt, a job in another state) is passed to
 *   `onEvent` and never crashes the worker: a refused completion still completes the BullMQ
 *   job, a refused failure or start ends it with UnrecoverableError.
 * - Add tracked jobs with TRACKED_JOB_OPTIONS (or at least its attempts and backoff), so that
 *   BullMQ's own attempt limit or backoff never overrides the service; a conflict is reported
 *   to `onEvent` as "job-options-conflict".
 * - When the service cannot be reached (after gRPC's own retries of the reports), the run fails
 *   and BullMQ runs it again after `unreachableRetryDelayMs`: no report is silently dropped, and
 *   the next run's TrackStart starts a new attempt. A run whose success could not be reported
 *   therefore runs again (at least once).
 */

import { hostname } from "node:os";

import { type Job as BullJob, type Processor, UnrecoverableError } from "bullmq";

import { Code, describeError, JobQueueError, RetryAfterError } from "./errors.js";
import { durationFromMs, durationToMs } from "./durations.js";
import type { JobClient } from "./job-client.js";

/** The backoff type tracked jobs are added with; the worker's backoffStrategy serves it. */
export const BACKOFF_TYPE = "jobqueue";
/**
 * Options to add tracked jobs with: the service decides how often a job runs, so BullMQ's own
 * attempt limit must never be the one that stops it first.
 */
export const TRACKED_JOB_OPTIONS = Object.freeze({
  attempts: 1_000_000,
  backoff: Object.freeze({ type: BACKOFF_TYPE }),
});
export const DEFAULT_UNREACHABLE_RETRY_DELAY_MS = 5_000;

/** Reports the service refuses: the service has moved on, so retrying the report cannot help. */
const REFUSALS = new Set<Code>([
  Code.FAILED_PRECONDITION,
  Code.NOT_FOUND,
  Code.INVALID_ARGUMENT,
  Code.ALREADY_EXISTS,
  Code.OUT_OF_RANGE,
]);

/** The run's failure delay in ms, keyed by the very error BullMQ passes to backoffStrategy. */
const retryDelays = new WeakMap<object, number>();

export type Report = "start" | "heartbeat" | "completion" | "failure";

export interface TrackingEvent {
  type: "report-refused" | "service-unreachable" | "heartbeat-failed" | "job-options-conflict";
  report: Report;
  job: BullJob;
  error?: unknown;
}

export type ErrorClass = abstract new (...args: never[]) => Error;

export interface TrackingOptions {
  /** The service queue of a BullMQ job; default: its BullMQ queue name. */
  queueName?: (job: BullJob) => string;
  /** The service job id of a BullMQ job; default `<queue name>:<BullMQ job id>`. */
  jobId?: (job: BullJob) => string;
  /** Worker name in the service; default `bullmq@<host>:<pid>`. */
  workerId?: string;
  /** Time between heartbeats; default a third of the lease the service granted at start. */
  heartbeatIntervalMs?: number;
  /** Error classes (or a test) that retrying cannot help: reported as non_retryable. */
  nonRetryable?: readonly ErrorClass[] | ((error: unknown) => boolean);
  /** How long BullMQ waits before running a job again when the service could not be told. */
  unreachableRetryDelayMs?: number;
  /** Refused reports, unreachable service, failed heartbeats; default: console.warn. */
  onEvent?: (event: TrackingEvent) => void;
}

export class ServiceUnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ServiceUnreachableError";
  }
}

function isRefusal(error: unknown): error is JobQueueError {
  return error instanceof JobQueueError && REFUSALS.has(error.code);
}

/** A JSON object for a Struct field: objects as they are, anything else under "value". */
function jsonObject(value: unknown): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  const plain = JSON.parse(JSON.stringify(value) ?? "null") as unknown;
  if (plain !== null && typeof plain === "object" && !Array.isArray(plain)) {
    return plain as Record<string, unknown>;
  }
  return { value: plain };
}

function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

function withRetryDelay<E extends Error>(error: E, delayMs: number): E {
  retryDelays.set(error, Math.max(0, Math.round(delayMs)));
  return error;
}

/** An UnrecoverableError that keeps the original's message and stack for BullMQ's failedReason. */
function unrecoverable(original: Error, extra: Record<string, unknown> = {}): UnrecoverableError {
  const error = new UnrecoverableError(original.message);
  error.stack = original.stack;
  Object.assign(error, { cause: original, ...extra });
  return error;
}

/**
 * Wraps BullMQ processors to report each run, and supplies the worker's backoffStrategy:
 *
 *     const tracker = new BullMQTracker(client);
 *     new Worker("emails", tracker.processor(send), { connection, settings: tracker.workerSettings() });
 *     await queue.add("send", data, TRACKED_JOB_OPTIONS);
 */
export class BullMQTracker {
  readonly client: JobClient;
  readonly options: TrackingOptions;
  private readonly workerId: string;

  constructor(client: JobClient, options: TrackingOptions = {}) {
    this.client = client;
    this.options = options;
    this.workerId = options.workerId ?? `bullmq@${hostname()}:${process.pid}`;
  }

  /**
   * BullMQ's custom backoff: the delay the service decided for this very failure. A failure
   * that did not come through a tracked processor (e.g. a stalled job) waits
   * unreachableRetryDelayMs.
   */
  readonly backoffStrategy = (_attemptsMade: number, _type?: string, error?: Error): number => {
    const decided = error ? retryDelays.get(error) : undefined;
    return decided ?? this.unreachableRetryDelayMs;
  };

  /** Worker settings carrying the backoffStrategy; merge your own settings in. */
  workerSettings<S extends object>(settings?: S): S & { backoffStrategy: BullMQTracker["backoffStrategy"] } {
    return { ...(settings ?? ({} as S)), backoffStrategy: this.backoffStrategy };
  }

  get unreachableRetryDelayMs(): number {
    return this.options.unreachableRetryDelayMs ?? DEFAULT_UNREACHABLE_RETRY_DELAY_MS;
  }

  /** The processor, reporting each run to the service. */
  processor<Data = unknown, Result = unknown, Name extends string = string>(
    processor: Processor<Data, Result, Name>,
  ): Processor<Data, Result, Name> {
    return async (job, token, signal) => {
      const bullJob = job as unknown as BullJob;
      const jobId = this.options.jobId?.(bullJob) ?? `${job.queueName}:${job.id}`;
      const run = await this.start(bullJob, jobId);
      const stopHeartbeats = this.heartbeats(bullJob, jobId, run.attemptNumber, run.leaseMs);
      const began = Date.now();
      let result: Result;
      try {
        result = await processor(job, token, signal);
      } catch (thrown) {
        await stopHeartbeats();
        throw await this.failed(bullJob, jobId, run.attemptNumber, asError(thrown));
      }
      await stopHeartbeats();
      await this.completed(bullJob, jobId, run.attemptNumber, result, Date.now() - began);
      return result;
    };
  }

  private emit(event: TrackingEvent): void {
    if (this.options.onEvent) {
      this.options.onEvent(event);
      return;
    }
    const reason = event.error instanceof Error ? event.error.message : String(event.error ?? "");
    console.warn(`jobqueue: ${event.type} (${event.report}) for BullMQ job ${event.job.id}: ${reason}`);
  }

  private unreachable(job: BullJob, report: Report, error: unknown, failure: Error): Error {
    this.emit({ type: "service-unreachable", report, job, error });
    return withRetryDelay(failure, this.unreachableRetryDelayMs);
  }

  private async start(job: BullJob, jobId: string): Promise<{ attemptNumber: number; leaseMs: number }> {
    try {
      const started = await this.client.trackStart({
        jobId,
        queueName: this.options.queueName?.(job) ?? job.queueName,
        jobName: job.name,
        jobData: jsonObject(job.data),
        workerId: this.workerId,
      });
      const run = started.job!;
      const leaseMs = Math.max(0, (run.leaseExpiresAt?.getTime() ?? 0) - (run.startedAt?.getTime() ?? 0));
      return { attemptNumber: run.attemptNumber, leaseMs };
    } catch (error) {
      if (isRefusal(error)) {
        this.emit({ type: "report-refused", report: "start", job, error });
        throw unrecoverable(new Error(`the queue service refused to start this run: ${error.message}`));
      }
      throw this.unreachable(
        job,
        "start",
        error,
        new ServiceUnreachableError(`the queue service could not record the start: ${asError(error).message}`, {
          cause: error,
        }),
      );
    }
  }

  /** Start heartbeats; the returned function stops them and waits for one in flight. */
  private heartbeats(job: BullJob, jobId: string, attemptNumber: number, leaseMs: number): () => Promise<void> {
    const intervalMs = this.options.heartbeatIntervalMs ?? Math.max(100, Math.floor(leaseMs / 3));
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) return async () => undefined;
    // Each heartbeat renews the lease TrackStart granted, for as long again.
    const leaseDuration = leaseMs > 0 ? durationFromMs(leaseMs) : undefined;
    let inFlight: Promise<void> | undefined;
    const timer = setInterval(() => {
      if (inFlight) return; // the previous one is still on its way
      inFlight = this.client
        .heartbeatJob({ jobId, attemptNumber, leaseDuration })
        .then(
          () => undefined,
          (error: unknown) => this.emit({ type: "heartbeat-failed", report: "heartbeat", job, error }),
        )
        .finally(() => {
          inFlight = undefined;
        });
    }, intervalMs);
    timer.unref();
    return async () => {
      clearInterval(timer);
      // A heartbeat landing after the report would be refused: let it finish first.
      await inFlight;
    };
  }

  private async completed(
    job: BullJob,
    jobId: string,
    attemptNumber: number,
    result: unknown,
    elapsedMs: number,
  ): Promise<void> {
    try {
      await this.client.trackCompletion({
        jobId,
        attemptNumber,
        result: jsonObject(result),
        processingDuration: durationFromMs(elapsedMs),
      });
    } catch (error) {
      if (isRefusal(error)) {
        // The service holds a later run or a final state already; this run's result stands in BullMQ.
        this.emit({ type: "report-refused", report: "completion", job, error });
        return;
      }
      throw this.unreachable(
        job,
        "completion",
        error,
        new ServiceUnreachableError(
          `the run succeeded but the queue service could not be told, so it runs again: ${asError(error).message}`,
          { cause: error },
        ),
      );
    }
  }

  private isNonRetryable(error: Error): boolean {
    if (error.name === "NonRetryableError") return true;
    const rule = this.options.nonRetryable;
    if (typeof rule === "function") return rule(error);
    return (rule ?? []).some((errorClass) => error instanceof errorClass);
  }

  /** Report the failure; return the error for BullMQ that carries the service's decision. */
  private async failed(job: BullJob, jobId: string, attemptNumber: number, error: Error): Promise<Error> {
    const retryAfterMs =
      error instanceof RetryAfterError || error.name === "RetryAfterError"
        ? (error as RetryAfterError).retryAfterMs
        : undefined;
    let decision;
    try {
      decision = await this.client.reportFailure(jobId, attemptNumber, describeError(error), {
        nonRetryable: this.isNonRetryable(error),
        retryAfterMs,
      });
    } catch (reportError) {
      if (isRefusal(reportError)) {
        this.emit({ type: "report-refused", report: "failure", job, error: reportError });
        return unrecoverable(error, { reportError });
      }
      return this.unreachable(job, "failure", reportError, error);
    }
    if (!decision.shouldRetry) {
      return unrecoverable(error, { deadLetterId: decision.deadLetterId });
    }
    const backoff = job.opts.backoff;
    const ours = typeof backoff === "object" && backoff.type === BACKOFF_TYPE;
    if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || !ours) {
      // BullMQ would not retry as the service decided: its own job options stop it first.
      this.emit({ type: "job-options-conflict", report: "failure", job, error });
    }
    return withRetryDelay(error, durationToMs(decision.retryDelay) ?? 0);
  }
}
