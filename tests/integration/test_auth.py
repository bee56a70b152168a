"""Token authentication over a real server: every RPC of every jobqueue service x every kind of caller."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import jobqueue.v1
import pytest
from google.protobuf import descriptor
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from tests.conftest import ADMIN_TOKEN, BACKENDS, WORKER_TOKEN, auth_tokens, grpcurl_path, make_config
from tests.rpc_errors import final_code

JOB_SERVICE = "jobqueue.v1.JobService"
ADMIN_SERVICE = "jobqueue.v1.AdminService"
WORKER_SERVICES = {JOB_SERVICE}


def jobqueue_methods() -> list[descriptor.MethodDescriptor]:
    """Every RPC of every service in the generated jobqueue.v1 package."""
    methods = []
    for module_info in pkgutil.iter_modules(jobqueue.v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"jobqueue.v1.{module_info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                methods.extend(service.methods)
    return sorted(methods, key=lambda method: method.full_name)


METHODS = jobqueue_methods()
CALLERS = {
    "no token": None,
    "bad token": "not-a-token-the-server-knows-0123",
    "worker": WORKER_TOKEN,
    "admin": ADMIN_TOKEN,
}


def expected_code(method: descriptor.MethodDescriptor, caller: str) -> grpc.StatusCode | None:
    """The exact rejection, or None where the call must get past authentication."""
    if caller in ("no token", "bad token"):
        return grpc.StatusCode.UNAUTHENTICATED
    if caller == "worker" and method.containing_service.full_name not in WORKER_SERVICES:
        return grpc.StatusCode.PERMISSION_DENIED
    return None


def call(channel: grpc.Channel, method: descriptor.MethodDescriptor, metadata) -> grpc.StatusCode:
    """Call `method` with an empty request and return the status code it ends with."""
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    stub = kind(
        path, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString
    )
    request = iter([request_class()]) if method.client_streaming else request_class()
    return final_code(stub, request, server_streaming=method.server_streaming, metadata=metadata, timeout=10)


@dataclass
class SecuredServer:
    server: QueueServer
    channel: grpc.Channel


@pytest.fixture(scope="module", params=BACKENDS)
def secured(request, tmp_path_factory) -> Iterator[SecuredServer]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("auth") / "jobs.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_session_url")
    server = QueueServer(make_config(url, tokens=auth_tokens()), clock=FakeClock()).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield SecuredServer(server, channel)
    finally:
        channel.close()
        server.stop(0)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def test_both_roles_and_every_service_are_covered():
    services = {method.containing_service.full_name for method in METHODS}
    assert services == {JOB_SERVICE, ADMIN_SERVICE}
    assert len([m for m in METHODS if m.containing_service.full_name == JOB_SERVICE]) == 11
    assert len([m for m in METHODS if m.containing_service.full_name == ADMIN_SERVICE]) == 31


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.full_name)
def test_auth_matrix(secured, method, caller):
    code = call(secured.channel, method, bearer(CALLERS[caller]))
    expected = expected_code(method, caller)
    if expected is None:
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), code
    else:
        assert code == expected


def rejection(channel, metadata) -> grpc.RpcError:
    stub = channel.unary_unary(f"/{JOB_SERVICE}/GetJob")
    with pytest.raises(grpc.RpcError) as raised:
        stub(b"", metadata=metadata, timeout=10)
    return raised.value


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None, "rejections carry a google.rpc.Status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "MISSING_TOKEN"),
        (f"Basic {ADMIN_TOKEN}", "MISSING_TOKEN"),
        ("Bearer", "MISSING_TOKEN"),
        ("Bearer ", "MISSING_TOKEN"),
        (f"Bearer {ADMIN_TOKEN}x", "INVALID_TOKEN"),
        (f"Bearer {ADMIN_TOKEN[:-1]}", "INVALID_TOKEN"),
        (f"Bearer {ADMIN_TOKEN.upper()}", "INVALID_TOKEN"),
    ],
)
def test_unauthenticated_carries_error_info(secured, header, reason):
    error = rejection(secured.channel, (("authorization", header),) if header is not None else ())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(error)
    assert (info.reason, info.domain) == (reason, "jobqueue.v1")
    assert ADMIN_TOKEN not in error.details()


def test_two_authorization_headers_are_rejected(secured):
    metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"), ("authorization", f"Bearer {WORKER_TOKEN}"))
    assert rejection(secured.channel, metadata).code() == grpc.StatusCode.UNAUTHENTICATED


def test_scheme_is_case_insensitive(secured):
    stub = secured.channel.unary_unary(f"/{JOB_SERVICE}/GetJob")
    with pytest.raises(grpc.RpcError) as raised:
        stub(b"", metadata=(("authorization", f"bearer {WORKER_TOKEN}"),), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # past auth, then the empty job_id


def test_permission_denied_names_role_and_service(secured):
    method = next(m for m in METHODS if m.containing_service.full_name == ADMIN_SERVICE)
    stub = secured.channel.unary_unary(f"/{method.containing_service.full_name}/{method.name}")
    with pytest.raises(grpc.RpcError) as raised:
        stub(b"", metadata=bearer(WORKER_TOKEN), timeout=10)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'worker'" in raised.value.details() and method.containing_service.full_name in raised.value.details()
    assert error_info(raised.value).reason == "ROLE_NOT_ALLOWED"


def test_health_and_reflection_stay_open(secured):
    health = health_pb2_grpc.HealthStub(secured.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    listing = subprocess.run(
        [grpcurl_path(), "-plaintext", secured.server.address, "list"], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0, listing.stderr
    assert JOB_SERVICE in listing.stdout.split()


def test_unknown_method_is_unimplemented_for_authenticated_callers(secured):
    stub = secured.channel.unary_unary(f"/{JOB_SERVICE}/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as raised:
        stub(b"", metadata=bearer(ADMIN_TOKEN), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
