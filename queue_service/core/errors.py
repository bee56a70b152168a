"""Domain errors; the API layer maps each class to one gRPC status code."""

from __future__ import annotations


class QueueError(Exception):
    """Base for errors a client caused or can act on; `field` names the offending request field."""

    reason = "QUEUE_ERROR"

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if reason:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class InvalidArgument(QueueError):
    reason = "INVALID_ARGUMENT"


class NotFound(QueueError):
    reason = "NOT_FOUND"


class AlreadyExists(QueueError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(QueueError):
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(QueueError):
    reason = "RESOURCE_EXHAUSTED"


class Aborted(QueueError):
    reason = "ABORTED"


class Unavailable(QueueError):
    reason = "UNAVAILABLE"


class Unauthenticated(QueueError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(QueueError):
    reason = "PERMISSION_DENIED"


class Unimplemented(QueueError):
    reason = "UNIMPLEMENTED"


class Cancelled(QueueError):
    """The caller stopped waiting (cancelled, or past its deadline): no one reads the answer."""

    reason = "CANCELLED"
