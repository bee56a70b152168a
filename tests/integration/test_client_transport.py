"""The client's transport options: gRPC-native retries on UNAVAILABLE, deadlines, TLS and mutual TLS, and the
one connection core every client is built on."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent import futures

import grpc
import pytest
from jobqueue import AdminClient, DeadlineExceeded, JobClient, NotFound, TlsConfig, Unauthenticated, Unavailable, aio
from jobqueue.aio.connection import ClientCore as AioClientCore
from jobqueue.connection import ClientCore, channel_settings, open_channel
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.config import TlsFiles
from tests.certificates import CertificateAuthority
from tests.conftest import WORKER_TOKEN, auth_tokens, make_config


@pytest.fixture
def flaky_server():
    """A JobService that answers UNAVAILABLE for its first `failures` calls of each method."""
    calls: Counter[str] = Counter()
    failures = 2

    def method(name, response, delay=0.0):
        def behavior(request, context):
            calls[name] += 1
            if delay:
                time.sleep(delay)
            if calls[name] <= failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return response

        return grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=lambda b: b, response_serializer=lambda m: m.SerializeToString()
        )

    handlers = {
        "GetJob": method("GetJob", pb.GetJobResponse(job=job_pb2.Job(job_id="j1", queue_name="q", state=1))),
        "LeaseJobs": method("LeaseJobs", pb.LeaseJobsResponse()),
        "TrackStart": method("TrackStart", pb.TrackStartResponse(job=job_pb2.Job(job_id="j1"))),
        "HeartbeatJob": method("HeartbeatJob", pb.HeartbeatJobResponse(), delay=1.0),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("jobqueue.v1.JobService", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", calls
    server.stop(0)


def test_idempotent_calls_are_retried_by_grpc_on_unavailable(flaky_server):
    target, calls = flaky_server
    with JobClient(target, timeout=10) as client:
        assert client.get_job("j1").job.job_id == "j1"
        assert calls["GetJob"] == 3  # two UNAVAILABLE, then the answer

        # Leasing or starting twice would take a second run: never repeated.
        with pytest.raises(Unavailable) as raised:
            client.lease("q")
        assert raised.value.message == "restarting"
        assert calls["LeaseJobs"] == 1
        with pytest.raises(Unavailable):
            client.track_start("j1", queue_name="q", job_name="n")
        assert calls["TrackStart"] == 1


def test_retries_can_be_turned_off(flaky_server):
    target, calls = flaky_server
    with JobClient(target, timeout=10, retry=False) as client:
        with pytest.raises(Unavailable):
            client.get_job("j1")
    assert calls["GetJob"] == 1


def test_deadlines(flaky_server):
    target, _ = flaky_server
    with JobClient(target, timeout=0.2, retry=False) as client:
        with pytest.raises(DeadlineExceeded):
            client.heartbeat("j1", 1)
        with pytest.raises(DeadlineExceeded):
            client.heartbeat("j1", 1, timeout=0.1)


def test_unreachable_server_is_unavailable_after_retries():
    with JobClient("127.0.0.1:1", timeout=30) as client:
        with pytest.raises(Unavailable):
            client.get_job("j1")  # gRPC gives up after the policy's attempts, well before the deadline


# TLS through TlsConfig, with the token as call credentials


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority(tmp_path)
    return ca, ca.issue("queue server", server=True), ca.issue("billing worker", server=False)


def test_tls_and_mutual_tls_with_a_token(database_url, pki, tmp_path):
    ca, server_pair, client_pair = pki
    tls = TlsFiles(str(server_pair.certificate), str(server_pair.key), str(ca.pair.certificate))
    server = QueueServer(make_config(database_url, tls=tls, tokens=auth_tokens()), clock=FakeClock()).start()
    target = f"localhost:{server.port}"
    try:
        mutual = TlsConfig.from_files(ca.pair.certificate, client_pair.certificate, client_pair.key)
        with JobClient(target, token=WORKER_TOKEN, tls=mutual, timeout=10) as client:
            with pytest.raises(NotFound):
                client.get_job("absent")  # through TLS, the client certificate and the token
        with JobClient(target, tls=mutual, timeout=10) as client:
            with pytest.raises(Unauthenticated):
                client.get_job("absent")
        without_certificate = TlsConfig.from_files(ca.pair.certificate)
        with JobClient(target, token=WORKER_TOKEN, tls=without_certificate, timeout=5, retry=False) as client:
            with pytest.raises(Unavailable):
                client.get_job("absent")
        other_ca = CertificateAuthority(tmp_path, name="other CA")
        with JobClient(
            target, token=WORKER_TOKEN, tls=TlsConfig.from_files(other_ca.pair.certificate), timeout=5, retry=False
        ) as client:
            with pytest.raises(Unavailable):
                client.get_job("absent")
    finally:
        server.stop(0)


def test_tls_server_name_override(database_url, pki):
    ca = pki[0]
    server_pair = ca.issue("internal server", server=True, hosts=("queue.internal",))
    server = QueueServer(
        make_config(database_url, tls=TlsFiles(str(server_pair.certificate), str(server_pair.key))), clock=FakeClock()
    ).start()
    try:
        target = f"127.0.0.1:{server.port}"
        with JobClient(target, tls=TlsConfig(ca.certificate_pem), timeout=5, retry=False) as client:
            with pytest.raises(Unavailable):
                client.get_job("absent")  # the certificate names queue.internal only
        tls = TlsConfig(root_certificates=ca.certificate_pem, server_name="queue.internal")
        with JobClient(target, tls=tls, timeout=10) as client:
            with pytest.raises(NotFound):
                client.get_job("absent")
    finally:
        server.stop(0)


def test_tls_config_checks_its_parts():
    with pytest.raises(ValueError, match="private key"):
        TlsConfig(certificate_chain=b"cert")
    assert "secret" not in repr(TlsConfig(certificate_chain=b"cert", private_key=b"secret"))


# The asyncio client: the same channel settings


def test_the_asyncio_client_retries_the_same_calls(flaky_server):
    target, calls = flaky_server

    async def scenario() -> None:
        async with aio.JobClient(target, timeout=10) as client:
            assert (await client.get_job("j1")).job.job_id == "j1"
            with pytest.raises(Unavailable):
                await client.lease("q")
            with pytest.raises(Unavailable):
                await client.track_start("j1", queue_name="q", job_name="n")
        async with aio.JobClient(target, timeout=0.2, retry=False) as client:
            with pytest.raises(DeadlineExceeded):
                await client.heartbeat("j1", 1)

    asyncio.run(scenario())
    assert (calls["GetJob"], calls["LeaseJobs"], calls["TrackStart"]) == (3, 1, 1)


def test_mutual_tls_with_several_targets_checks_the_first_host_name(database_url, pki):
    ca, _, client_pair = pki
    # The certificate names a host only, not the address the targets resolve to.
    server_pair = ca.issue("queue server", server=True, hosts=("localhost",))
    tls = TlsFiles(str(server_pair.certificate), str(server_pair.key), str(ca.pair.certificate))
    server = QueueServer(make_config(database_url, tls=tls, tokens=auth_tokens()), clock=FakeClock()).start()
    targets = [f"localhost:{server.port}", f"127.0.0.1:{server.port}"]
    mutual = TlsConfig.from_files(ca.pair.certificate, client_pair.certificate, client_pair.key)
    try:
        with JobClient(targets, token=WORKER_TOKEN, tls=mutual, timeout=10) as client:
            with pytest.raises(NotFound):
                client.get_job("absent")

        async def scenario() -> None:
            async with aio.JobClient(targets, token=WORKER_TOKEN, tls=mutual, timeout=10) as client:
                with pytest.raises(NotFound):
                    await client.get_job("absent")
            async with aio.JobClient(targets, tls=mutual, timeout=10) as client:
                with pytest.raises(Unauthenticated):
                    await client.get_job("absent")
            reversed_targets = targets[::-1]  # 127.0.0.1 first: not a name on the certificate
            async with aio.JobClient(
                reversed_targets, token=WORKER_TOKEN, tls=mutual, timeout=5, retry=False
            ) as client:
                with pytest.raises(Unavailable):
                    await client.get_job("absent")

        asyncio.run(scenario())
    finally:
        server.stop(0)


# One client core


def test_every_client_is_built_on_one_connection_core():
    """Sync and asyncio clients of a service make their channels with the same options, the ones
    open_channel uses, so a change to the set-up reaches every client at once."""
    target = "127.0.0.1:1"
    expected = {
        client: channel_settings(
            target, token=None, tls=None, retry=True, options=(), idempotent_methods=client.idempotent_methods
        ).options
        for client in (JobClient, AdminClient)
    }

    async def aio_options() -> dict:
        async with aio.JobClient(target) as jobs, aio.AdminClient(target) as admin:
            return {JobClient: list(jobs.connection.options), AdminClient: list(admin.connection.options)}

    with JobClient(target) as jobs, AdminClient(target) as admin:
        sync = {JobClient: list(jobs.connection.options), AdminClient: list(admin.connection.options)}
    assert sync == asyncio.run(aio_options()) == expected
    assert aio.JobClient.idempotent_methods is JobClient.idempotent_methods
    assert aio.AdminClient.idempotent_methods is AdminClient.idempotent_methods
    # The retry policy covers each service's own safe methods.
    assert "GetJob" in dict(sync[JobClient])["grpc.service_config"]
    assert "GetStatistics" in dict(sync[AdminClient])["grpc.service_config"]
    # A server that is back is found within 6 s (5 s ± 20 %), whatever the outage; gRPC alone waits up to 120 s.
    assert dict(sync[JobClient])["grpc.max_reconnect_backoff_ms"] == 5_000


def test_a_callers_channel_option_takes_the_place_of_the_clients_own(flaky_server):
    """gRPC keeps the first option of a name: the caller's comes first and alone."""
    target, calls = flaky_server
    with JobClient(target, timeout=10, options=[("grpc.enable_retries", 0)]) as client:
        assert [name for name, _ in client.connection.options].count("grpc.enable_retries") == 1
        with pytest.raises(Unavailable):
            client.get_job("j1")
    assert calls["GetJob"] == 1  # not retried, though the client's own option turns retries on


class GetJobClient(ClientCore):
    """A client written later: a stub and its safe methods are all it names."""

    stub_class = job_service_pb2_grpc.JobServiceStub
    idempotent_methods = {"jobqueue.v1.JobService": ["GetJob"]}

    def get_job(self) -> pb.GetJobResponse:
        return self.connection.unary(self.stub.GetJob, pb.GetJobRequest(job_id="j1"))


class AsyncGetJobClient(AioClientCore):
    stub_class = job_service_pb2_grpc.JobServiceStub
    idempotent_methods = GetJobClient.idempotent_methods

    async def get_job(self) -> pb.GetJobResponse:
        return await self.connection.unary(self.stub.GetJob, pb.GetJobRequest(job_id="j1"))


def test_a_new_client_gets_retries_deadlines_and_typed_errors_from_the_core(flaky_server):
    target, calls = flaky_server
    with GetJobClient(target, timeout=10) as client:
        assert repr(client) == f"GetJobClient({target!r})"
        assert client.connection.timeout == 10
        assert client.get_job().job.job_id == "j1"
    assert calls["GetJob"] == 3  # retried by gRPC on UNAVAILABLE, as the service config says

    calls.clear()
    with GetJobClient(target, timeout=10, retry=False) as client, pytest.raises(Unavailable):
        client.get_job()
    assert calls["GetJob"] == 1


def test_a_new_asyncio_client_gets_the_same_core(flaky_server):
    target, calls = flaky_server

    async def scenario() -> str:
        async with AsyncGetJobClient(target, timeout=10) as client:
            assert repr(client) == f"aio.AsyncGetJobClient({target!r})"
            return (await client.get_job()).job.job_id

    assert asyncio.run(scenario()) == "j1"
    assert calls["GetJob"] == 3


def test_open_channel_is_the_clients_set_up(flaky_server):
    """A channel from open_channel, handed to a client, retries as the client's own channel does."""
    target, calls = flaky_server
    channel = open_channel(target, idempotent_methods=JobClient.idempotent_methods)
    try:
        with JobClient(target, channel=channel, timeout=10) as client:
            assert client.get_job("j1").job.job_id == "j1"
            assert client.connection.options is None  # the channel's options are the caller's
        assert calls["GetJob"] == 3
    finally:
        channel.close()
