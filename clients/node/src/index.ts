/** The queue service's typed Node.js client: JobClient, AdminClient, typed errors and the generated messages. */

export { AdminClient, ADMIN_IDEMPOTENT_METHODS, ADMIN_SERVICE } from "./admin-client.js";
export {
  channelTarget,
  Connection,
  DEFAULT_TARGET,
  DEFAULT_TIMEOUT_MS,
  RECONNECT_BACKOFF,
  RETRY_POLICY,
  serviceConfig,
  type CallSettings,
  type ConnectionOptions,
  type TlsOptions,
} from "./connection.js";
export { durationFromMs, durationToMs } from "./durations.js";
export * from "./errors.js";
export {
  JobClient,
  JOB_IDEMPOTENT_METHODS,
  JOB_SERVICE,
  LEASE_GRACE_MS,
  type CompletionResult,
  type EnqueueOptions,
  type FailureOptions,
  type UniqueEnqueueOptions,
} from "./job-client.js";
export * from "./generated/jobqueue/v1/job.js";
export * as jobService from "./generated/jobqueue/v1/job_service.js";
export * as adminService from "./generated/jobqueue/v1/admin_service.js";
export type { Duration } from "./generated/google/protobuf/duration.js";
