"""Server-side security: the principal seam, TLS and mutual TLS, safe defaults, and tokens kept out of logs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from concurrent import futures

import grpc
import pytest
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from queue_service.api.auth import AuthInterceptor
from queue_service.api.principal import current_actor
from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.config import ConfigError, TlsFiles
from tests.certificates import CertificateAuthority
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, auth_tokens, make_config


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


# The principal seam servicers use for audit events


@pytest.fixture
def who_server():
    """A server whose JobService methods answer with the caller's name, as a servicer would see it."""

    def who(_request, context):
        return current_actor(context).encode()

    def who_stream(_request, context):
        for _ in range(3):
            yield current_actor(context).encode()

    handlers = grpc.method_handlers_generic_handler(
        "jobqueue.v1.JobService",
        {
            "Who": grpc.unary_unary_rpc_method_handler(who),
            "WhoStream": grpc.unary_stream_rpc_method_handler(who_stream),
        },
    )

    def start(interceptors):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
        server.add_generic_rpc_handlers((handlers,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return grpc.insecure_channel(f"127.0.0.1:{port}")

    servers = []
    yield start
    for server in servers:
        server.stop(0)


def test_servicers_see_the_token_name(who_server):
    channel = who_server([AuthInterceptor(auth_tokens())])
    who = channel.unary_unary("/jobqueue.v1.JobService/Who")
    stream = channel.unary_stream("/jobqueue.v1.JobService/WhoStream")
    assert who(b"", metadata=bearer(ADMIN_TOKEN), timeout=10) == b"admin"
    assert who(b"", metadata=bearer(WORKER_TOKEN), timeout=10) == b"worker"
    assert list(stream(b"", metadata=bearer(WORKER_TOKEN), timeout=10)) == [b"worker"] * 3


def test_without_authentication_the_actor_is_anonymous(who_server):
    channel = who_server([])
    assert channel.unary_unary("/jobqueue.v1.JobService/Who")(b"", timeout=10) == b"anonymous"


# TLS


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority(tmp_path)
    return {
        "ca": ca,
        "server": ca.issue("queue server", server=True),
        "client": ca.issue("billing worker", server=False),
        "stranger": CertificateAuthority(tmp_path, name="other CA").issue("stranger", server=False),
    }


def tls_server(database_url, tls: TlsFiles, **overrides):
    return QueueServer(make_config(database_url, tls=tls, **overrides), clock=FakeClock()).start()


def get_job(channel, metadata=()):
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetJob(pb.GetJobRequest(job_id="absent"), metadata=metadata, timeout=5)
    return raised.value.code()


def test_tls_serves_only_tls_clients(database_url, pki):
    server = tls_server(database_url, TlsFiles(str(pki["server"].certificate), str(pki["server"].key)))
    try:
        trusted = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(pki["ca"].certificate_pem))
        assert get_job(trusted) == grpc.StatusCode.NOT_FOUND  # reached the servicer
        plaintext = grpc.insecure_channel(server.address)
        assert get_job(plaintext) == grpc.StatusCode.UNAVAILABLE
        untrusting = grpc.secure_channel(server.address, grpc.ssl_channel_credentials())
        assert get_job(untrusting) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


def test_mutual_tls_requires_a_client_certificate_from_the_ca(database_url, pki):
    tls = TlsFiles(str(pki["server"].certificate), str(pki["server"].key), str(pki["ca"].pair.certificate))
    server = tls_server(database_url, tls, tokens=auth_tokens())
    ca = pki["ca"].certificate_pem
    try:
        certificate, key = pki["client"].read()
        with_cert = grpc.secure_channel(
            server.address, grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=certificate)
        )
        assert get_job(with_cert, bearer(WORKER_TOKEN)) == grpc.StatusCode.NOT_FOUND
        # mTLS does not replace tokens: both are checked.
        assert get_job(with_cert) == grpc.StatusCode.UNAUTHENTICATED
        without_cert = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(ca))
        assert get_job(without_cert, bearer(WORKER_TOKEN)) == grpc.StatusCode.UNAVAILABLE
        certificate, key = pki["stranger"].read()
        foreign = grpc.secure_channel(
            server.address, grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=certificate)
        )
        assert get_job(foreign, bearer(WORKER_TOKEN)) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


def test_unreadable_tls_files_are_a_config_error(database_url, tmp_path):
    with pytest.raises(ConfigError, match="--tls-cert: cannot read"):
        QueueServer(make_config(database_url, tls=TlsFiles(str(tmp_path / "no.pem"), str(tmp_path / "no.key"))))


# The command line: refusal without tokens, and no token in any log line


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "queue_service", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    env.update(extra)
    return env


def test_non_loopback_without_tokens_refuses_to_start(tmp_path):
    process = cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--database-url",
        f"sqlite:///{tmp_path}/jobs.sqlite3",
        env=clean_env(),
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in stderr
    assert "--insecure" in stderr
    assert "listening" not in stdout
    assert not (tmp_path / "jobs.sqlite3").exists(), "refused before touching the database"


def test_loopback_without_tokens_warns(tmp_path):
    process = cli("serve", "--port", "0", "--database-url", f"sqlite:///{tmp_path}/jobs.sqlite3", env=clean_env())
    try:
        line = process.stdout.readline()
        assert re.match(r"queue-service listening on 127\.0\.0\.1:\d+", line), line
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "WARNING" in stderr and "authentication is off" in stderr


def test_tokens_never_reach_the_log(tmp_path):
    tokens_file = tmp_path / "tokens.toml"
    file_token = "alice-file-token-0123456789"
    tokens_file.write_text(f'[[tokens]]\nname = "alice"\nrole = "admin"\ntoken = "{file_token}"\n')
    tokens_file.chmod(0o600)
    wrong_token = "wrong-token-nobody-has-0123456789"
    env = clean_env(QUEUE_ADMIN_TOKEN=ADMIN_TOKEN, QUEUE_WORKER_TOKEN=WORKER_TOKEN)
    process = cli(
        "--log-level",
        "DEBUG",
        "serve",
        "--port",
        "0",
        "--tokens-file",
        str(tokens_file),
        "--database-url",
        f"sqlite:///{tmp_path}/jobs.sqlite3",
        env=env,
    )
    try:
        address = process.stdout.readline().split()[-1]
        channel = grpc.insecure_channel(address)
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        calls = [
            (ADMIN_TOKEN, grpc.StatusCode.NOT_FOUND),
            (WORKER_TOKEN, grpc.StatusCode.NOT_FOUND),
            (file_token, grpc.StatusCode.NOT_FOUND),
            (wrong_token, grpc.StatusCode.UNAUTHENTICATED),
            (ADMIN_TOKEN[:-1], grpc.StatusCode.UNAUTHENTICATED),
        ]
        for token, code in calls:
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetJob(pb.GetJobRequest(job_id="absent"), metadata=bearer(token), timeout=10)
            assert raised.value.code() == code
        with pytest.raises(grpc.RpcError):
            stub.GetJob(pb.GetJobRequest(job_id="absent"), metadata=(("authorization", wrong_token),), timeout=10)
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    log = stdout + stderr
    assert "rejected /jobqueue.v1.JobService/GetJob: unknown token" in log  # the log did record the calls
    assert "3 token(s)" in log
    for secret in (ADMIN_TOKEN, WORKER_TOKEN, file_token, wrong_token, ADMIN_TOKEN[:-1], ADMIN_TOKEN[:12]):
        assert secret not in log
