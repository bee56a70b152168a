"""Assertions on gRPC errors: status code, the field named in the message and in the rich status details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from queue_service.store.schema import metadata


def rpc_error(method, request, **call_options) -> grpc.RpcError:
    """Call `method` and return the RpcError it raised; fail the test when it succeeded."""
    with pytest.raises(grpc.RpcError) as raised:
        method(request, **call_options)
    return raised.value


def final_code(stub, request, *, server_streaming: bool, **call_options) -> grpc.StatusCode:
    """Call a multi-callable, read a streamed answer to its end, and return the status it ends with."""
    try:
        response = stub(request, **call_options)
        if server_streaming:
            for _ in response:
                pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def error_details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo | None, list[str]]:
    """The ErrorInfo detail and the BadRequest field violations of a rich status."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    info, violations = None, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(violation.field for violation in bad_request.field_violations)
    return info, violations


def assert_rejected(
    method, request, code: grpc.StatusCode, field: str, *, mentions: str | None = None, **call_options
) -> grpc.RpcError:
    """The call fails with `code`; ErrorInfo and (for INVALID_ARGUMENT) BadRequest name `field`.

    The message names the field too, or `mentions` when the message rather names the value (a job's id).
    """
    error = rpc_error(method, request, **call_options)
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    expected = field if mentions is None else mentions
    assert expected in error.details(), f"message does not name {expected!r}: {error.details()}"
    info, violations = error_details(error)
    assert info is not None, "no ErrorInfo detail"
    assert info.domain == "jobqueue.v1"
    assert info.metadata["field"] == field
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert violations == [field]
    return error


def row_counts(database) -> dict[str, int]:
    """Rows per table, to prove that a rejected call wrote nothing."""
    with database.engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }
