/**
 * Typed errors: one class per gRPC status code, carrying the server's message, its ErrorInfo
 * (reason, domain, metadata) and BadRequest field violations from `grpc-status-details-bin`.
 * Also the errors a job handler throws to steer the retry decision.
 */

import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";

import { BadRequest, ErrorInfo } from "./generated/google/rpc/error_details.js";
import { Status } from "./generated/google/rpc/status.js";

const STATUS_DETAILS_KEY = "grpc-status-details-bin";
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";

export { Code };

export interface ErrorDetails {
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  fieldViolations?: Record<string, string>;
}

/** A call to the service failed. `reason`, `domain` and `metadata` come from the status's ErrorInfo. */
export class JobQueueError extends Error {
  readonly code: Code;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Record<string, string>;
  readonly fieldViolations: Record<string, string>;

  constructor(message: string, code: Code = Code.UNKNOWN, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.reason = details.reason ?? "";
    this.domain = details.domain ?? "";
    this.metadata = { ...(details.metadata ?? {}) };
    this.fieldViolations = { ...(details.fieldViolations ?? {}) };
  }

  /** The request field the server blamed, if any. */
  get field(): string | undefined {
    return this.metadata.field || Object.keys(this.fieldViolations)[0];
  }
}

export class Cancelled extends JobQueueError {}
export class InvalidArgument extends JobQueueError {}
export class DeadlineExceeded extends JobQueueError {}
export class NotFound extends JobQueueError {}
export class AlreadyExists extends JobQueueError {}
export class PermissionDenied extends JobQueueError {}
export class ResourceExhausted extends JobQueueError {}
export class FailedPrecondition extends JobQueueError {}
export class Aborted extends JobQueueError {}
export class Unimplemented extends JobQueueError {}
export class Internal extends JobQueueError {}
export class Unavailable extends JobQueueError {}
export class Unauthenticated extends JobQueueError {}

type ErrorClass = new (message: string, code?: Code, details?: ErrorDetails) => JobQueueError;

const ERRORS_BY_CODE: ReadonlyMap<Code, ErrorClass> = new Map<Code, ErrorClass>([
  [Code.CANCELLED, Cancelled],
  [Code.INVALID_ARGUMENT, InvalidArgument],
  [Code.DEADLINE_EXCEEDED, DeadlineExceeded],
  [Code.NOT_FOUND, NotFound],
  [Code.ALREADY_EXISTS, AlreadyExists],
  [Code.PERMISSION_DENIED, PermissionDenied],
  [Code.RESOURCE_EXHAUSTED, ResourceExhausted],
  [Code.FAILED_PRECONDITION, FailedPrecondition],
  [Code.ABORTED, Aborted],
  [Code.UNIMPLEMENTED, Unimplemented],
  [Code.INTERNAL, Internal],
  [Code.UNAVAILABLE, Unavailable],
  [Code.UNAUTHENTICATED, Unauthenticated],
]);

function typedError(code: Code, message: string, status: Status | undefined): JobQueueError {
  const details: ErrorDetails = {};
  const violations: Record<string, string> = {};
  let foundInfo = false;
  for (const detail of status?.details ?? []) {
    if (detail.typeUrl === ERROR_INFO_TYPE && !foundInfo) {
      const info = ErrorInfo.decode(detail.value);
      details.reason = info.reason;
      details.domain = info.domain;
      details.metadata = info.metadata;
      foundInfo = true;
    } else if (detail.typeUrl === BAD_REQUEST_TYPE) {
      for (const violation of BadRequest.decode(detail.value).fieldViolations) {
        violations[violation.field] = violation.description;
      }
    }
  }
  details.fieldViolations = violations;
  const ErrorType = ERRORS_BY_CODE.get(code) ?? JobQueueError;
  return new ErrorType(message || Code[code] || "UNKNOWN", code, details);
}

/** The typed error for a failed call, with the details of its google.rpc.Status if it has one. */
export function fromServiceError(error: ServiceError): JobQueueError {
  const code = typeof error.code === "number" ? (error.code as Code) : Code.UNKNOWN;
  const message = error.details || Code[code] || "UNKNOWN";
  let status: Status | undefined;
  const raw = error.metadata instanceof Metadata ? error.metadata.get(STATUS_DETAILS_KEY)[0] : undefined;
  if (raw instanceof Buffer) {
    try {
      status = Status.decode(raw);
    } catch {
      status = undefined; // unreadable details: the code and message still stand
    }
    if (status !== undefined && status.code !== code) {
      status = undefined; // a status that disagrees with the call's code is not about this call
    }
  }
  return typedError(code, message, status);
}

/** The typed error for one refused entry of a batch answer, which carries its own google.rpc.Status. */
export function fromStatus(status: Status): JobQueueError {
  return typedError(status.code as Code, status.message, status);
}

/** Throw from a job handler when retrying cannot help: the job goes straight to the dead-letter queue. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** Throw from a job handler to retry no sooner than `retryAfterMs` (within the policy's max_delay). */
export class RetryAfterError extends Error {
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RetryAfterError";
    this.retryAfterMs = retryAfterMs;
  }
}

// The server's limits on a failure report; longer values would get the report itself rejected.
export const MAX_MESSAGE_LENGTH = 10_000;
export const MAX_TYPE_LENGTH = 255;
export const MAX_DETAILS_BYTES = 64 * 1024;

export interface DescribedError {
  message: string;
  type: string;
  details: string;
}

/** Message, type and stack of `error` for a failure report, within the server's limits. */
export function describeError(error: unknown): DescribedError {
  const isError = error instanceof Error;
  // A subclass that leaves `name` as "Error" is still known by its class name.
  const name = isError ? (error.name && error.name !== "Error" ? error.name : error.constructor?.name || "Error") : typeof error;
  const type = name.slice(0, MAX_TYPE_LENGTH);
  let message = (isError ? error.message : String(error)).trim() || type;
  if (message.length > MAX_MESSAGE_LENGTH) {
    message = message.slice(0, MAX_MESSAGE_LENGTH - 1) + "…";
  }
  let details = Buffer.from((isError ? error.stack : undefined) ?? "", "utf8");
  if (details.length > MAX_DETAILS_BYTES) {
    // A JavaScript stack starts at the frame that threw: keep its head.
    details = Buffer.concat([details.subarray(0, MAX_DETAILS_BYTES - 4), Buffer.from("\n...")]);
  }
  return { message, type, details: details.toString("utf8") };
}
