"""The one table from domain errors to gRPC status codes, and the wrapper that applies it."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from queue_service.core import errors
from queue_service.store.errors import StoreCorrupted, StoreUnavailable

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "jobqueue.v1"

STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreCorrupted: grpc.StatusCode.DATA_LOSS,
}


def status_code_for(error: Exception) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def rich_status(code: grpc.StatusCode, message: str, *, reason: str, field: str | None) -> grpc.Status:
    """A google.rpc.Status with ErrorInfo (AIP-193) and, for a bad field, a BadRequest violation."""
    return rpc_status.to_status(status_message(code, message, reason=reason, field=field))


def status_message(code: grpc.StatusCode, message: str, *, reason: str, field: str | None) -> status_pb2.Status:
    """The google.rpc.Status message behind `rich_status`, also carried per entry by batch responses."""
    details = []
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata={"field": field} if field else {})
    details.append(info)
    if field and code == grpc.StatusCode.INVALID_ARGUMENT:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]
            )
        )
    packed = []
    for detail in details:
        container = any_pb2.Any()
        container.Pack(detail)
        packed.append(container)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


def error_status_message(error: errors.QueueError) -> status_pb2.Status:
    """The status one refused entry of a batch gets: what the single call would have returned."""
    return status_message(status_code_for(error), error.message, reason=error.reason, field=error.field)


def status_for(error: Exception) -> grpc.Status:
    code = status_code_for(error)
    if isinstance(error, errors.QueueError):
        return rich_status(code, error.message, reason=error.reason, field=error.field)
    if isinstance(error, StoreUnavailable):
        return rich_status(code, str(error), reason="DATABASE_UNAVAILABLE", field=None)
    if isinstance(error, StoreCorrupted):
        return rich_status(code, str(error), reason="DATABASE_CORRUPTED", field=None)
    return rich_status(code, "internal error; see the server log", reason="INTERNAL", field=None)


def _abort(context: grpc.ServicerContext, method: str, error: Exception) -> None:
    status = status_for(error)
    if status.code == grpc.StatusCode.INTERNAL:
        logger.exception("unexpected error in %s", method, exc_info=error)
    else:
        logger.debug("%s failed: %s %s", method, status.code.name, status.details)
    context.abort_with_status(status)


def translate_errors(method: Callable) -> Callable:
    """Turn domain errors raised by a servicer method into their gRPC status."""
    name = method.__qualname__

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as error:  # noqa: BLE001 - mapped to a status, unexpected ones logged
                _abort(context, name, error)

        return stream_wrapper

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as error:  # noqa: BLE001 - mapped to a status, unexpected ones logged
            _abort(context, name, error)

    return wrapper


def translate_all(cls: type) -> type:
    """Class decorator: apply translate_errors to every public RPC method the class defines."""
    for attribute, value in list(vars(cls).items()):
        if callable(value) and attribute[:1].isupper():
            setattr(cls, attribute, translate_errors(value))
    return cls
