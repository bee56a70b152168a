"""Typed errors: one exception class per gRPC status code, carrying the server's message and ErrorInfo.

Also the two exceptions a job handler raises to steer the retry decision.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


class JobQueueError(Exception):
    """A call to the service failed. `reason`, `domain` and `metadata` come from the status's ErrorInfo."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: dict[str, str] = dict(field_violations or {})

    @property
    def field(self) -> str | None:
        """The request field the server blamed, if any."""
        return self.metadata.get("field") or next(iter(self.field_violations), None)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name}, reason={self.reason!r})"


class Cancelled(JobQueueError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgument(JobQueueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(JobQueueError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(JobQueueError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(JobQueueError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(JobQueueError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(JobQueueError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(JobQueueError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(JobQueueError):
    code = grpc.StatusCode.ABORTED


class Unimplemented(JobQueueError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(JobQueueError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(JobQueueError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(JobQueueError):
    code = grpc.StatusCode.UNAUTHENTICATED


ERRORS_BY_CODE: dict[grpc.StatusCode, type[JobQueueError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        Unimplemented,
        Internal,
        Unavailable,
        Unauthenticated,
    )
}
CODES_BY_VALUE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def from_rpc_error(error: grpc.RpcError) -> JobQueueError:
    """The typed error for a failed call, with the details of its google.rpc.Status if it has one."""
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message: str = (error.details() if hasattr(error, "details") else None) or code.name
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a status whose code or message disagrees with the call's: ignore the details
        status = None
    return _typed_error(code, message, status.details if status is not None else ())


def from_status(status: status_pb2.Status) -> JobQueueError:
    """The typed error for one refused entry of a batch answer, which carries its own google.rpc.Status."""
    code = CODES_BY_VALUE.get(status.code, grpc.StatusCode.UNKNOWN)
    return _typed_error(code, status.message or code.name, status.details)


def _typed_error(code: grpc.StatusCode, message: str, details: Iterable[any_pb2.Any]) -> JobQueueError:
    info = error_details_pb2.ErrorInfo()
    violations: dict[str, str] = {}
    found_info = False
    for detail in details:
        if not found_info and detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
            found_info = True
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.update((v.field, v.description) for v in bad_request.field_violations)
    cls = ERRORS_BY_CODE.get(code, JobQueueError)
    return cls(
        message,
        code=code,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        field_violations=violations,
    )


class NonRetryableError(Exception):
    """Raise from a job handler when retrying cannot help: the job goes straight to the dead-letter queue."""


class RetryAfterError(Exception):
    """Raise from a job handler to retry no sooner than `retry_after` (within the policy's max_delay)."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# The server's limits on a failure report; longer values would get the report itself rejected.
MAX_MESSAGE_LENGTH = 10_000
MAX_TYPE_LENGTH = 255
MAX_DETAILS_BYTES = 64 * 1024


def describe(error: BaseException) -> dict[str, Any]:
    """Keyword arguments for a failure report about `error`: message, type and traceback, within the limits."""
    cls = type(error)
    error_type = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = str(error).strip() or error_type
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    details = "".join(traceback.format_exception(error)).encode()
    if len(details) > MAX_DETAILS_BYTES:
        # The end of a traceback says where it failed; keep that.
        details = b"...\n" + details[-(MAX_DETAILS_BYTES - 4) :]
    return {
        "message": message,
        "error_type": error_type[:MAX_TYPE_LENGTH],
        "details": details.decode(errors="ignore"),
    }
