"""`queue-service` as a subprocess: JSON logs, the health subcommand, --workers, bad configuration."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from queue_service.api.server import QueueServer
from queue_service.config import TlsFiles
from tests.certificates import CertificateAuthority
from tests.conftest import WORKER_TOKEN, make_config
from tests.integration.test_metrics import free_port, scrape

QUEUE_SERVICE = str(Path(sys.executable).parent / "queue-service")
SECRET_PAYLOAD = "card-4111-1111-1111-1111-SECRET"
WRONG_TOKEN = "not-a-real-token-but-still-secret-42"


def base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    env.update(extra)
    return env


class Served:
    """A `queue-service serve` subprocess; stdout is read until its "listening on" line."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [QUEUE_SERVICE, *args], stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        self.banner = self._read_banner(timeout=90)
        self.target = self.banner.split("listening on ")[1].split()[0]

    def _read_banner(self, timeout: float) -> str:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or "listening on" not in lines[0]:
            self.stop()
            pytest.fail(f"server did not start: {lines!r}\n{self.log_path.read_text()}")
        return lines[0]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.log.close()
        return code

    def log_lines(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if line.strip()]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QUEUE_SERVICE, *args], capture_output=True, text=True, timeout=timeout, env=env or base_env()
    )


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"


def test_json_logs_parse_and_never_contain_tokens_or_job_data(tmp_path):
    env = base_env(QUEUE_WORKER_TOKEN=WORKER_TOKEN, QUEUE_LOG_FORMAT="json")
    served = Served(
        ["serve", "--port", "0", "--database-url", sqlite_url(tmp_path), "--log-level", "DEBUG"], env, tmp_path / "log"
    )
    try:
        with grpc.insecure_channel(served.target) as channel:
            jobs = job_service_pb2_grpc.JobServiceStub(channel)
            auth = [("authorization", f"Bearer {WORKER_TOKEN}")]
            job = jobs.EnqueueJob(
                pb.EnqueueJobRequest(queue_name="payments", job_name="charge", job_data={"card": SECRET_PAYLOAD}),
                metadata=auth,
            ).job
            jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["payments"]), metadata=auth)
            jobs.TrackCompletion(
                pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=1, result={"receipt": SECRET_PAYLOAD}),
                metadata=auth,
            )
            with pytest.raises(grpc.RpcError) as missing:
                jobs.GetJob(pb.GetJobRequest(job_id="no-such-job"), metadata=auth)
            with pytest.raises(grpc.RpcError) as refused:
                jobs.GetJob(pb.GetJobRequest(job_id=job.job_id), metadata=[("authorization", f"Bearer {WRONG_TOKEN}")])
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        assert served.stop() == 0

    text = served.log_path.read_text()
    for secret in (WORKER_TOKEN, WRONG_TOKEN, SECRET_PAYLOAD):
        assert secret not in text
    entries = [json.loads(line) for line in served.log_lines()]
    assert all({"time", "level", "logger", "message", "pid"} <= entry.keys() for entry in entries)
    rpcs = [entry for entry in entries if entry["logger"] == "queue_service.rpc"]
    by_method = {(entry["method"].rsplit("/", 1)[1], entry["code"]): entry for entry in rpcs}
    enqueue = by_method[("EnqueueJob", "OK")]
    assert enqueue["job_id"] == job.job_id and enqueue["level"] == "DEBUG" and enqueue["duration_ms"] >= 0
    assert by_method[("TrackCompletion", "OK")]["job_id"] == job.job_id
    assert by_method[("GetJob", "NOT_FOUND")]["job_id"] == "no-such-job"
    assert ("GetJob", "UNAUTHENTICATED") in by_method
    assert any(entry["message"] == "received SIGTERM, shutting down" for entry in entries)


def test_health_exits_zero_only_while_serving(tmp_path):
    served = Served(["serve", "--port", "0", "--database-url", sqlite_url(tmp_path)], base_env(), tmp_path / "log")
    try:
        healthy = run_cli("health", "--target", served.target)
        assert healthy.returncode == 0, healthy.stderr
        assert "SERVING" in healthy.stdout
        unknown_service = run_cli("health", "--target", served.target, "--service", "no.such.Service")
        assert unknown_service.returncode != 0
    finally:
        assert served.stop() == 0
    started = time.monotonic()
    stopped = run_cli("health", "--target", served.target, "--timeout", "2")
    assert stopped.returncode != 0
    assert "UNAVAILABLE" in stopped.stderr or "DEADLINE_EXCEEDED" in stopped.stderr
    assert time.monotonic() - started < 20


def test_two_worker_processes_both_answer_and_stop_together(database_url, tmp_path):
    metrics_port = free_port()
    served = Served(
        [
            "serve",
            "--workers",
            "2",
            "--port",
            "0",
            "--metrics-port",
            str(metrics_port),
            "--database-url",
            database_url,
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
        ],
        base_env(),
        tmp_path / "log",
    )
    found = re.search(r"\(pids (\d+) (\d+)\) and a sweeper \(pid (\d+)\)$", served.banner.rstrip())
    assert found, served.banner
    *servers, sweeper_pid = map(int, found.groups())
    child_pids = set(servers)
    assert len(child_pids) == 2 and served.process.pid not in child_pids | {sweeper_pid}
    probes = 40
    try:
        assert run_cli("health", "--target", served.target).returncode == 0
        for index in range(probes):
            # A local subchannel pool gives each channel its own TCP connection, which the kernel
            # hands to one of the processes listening on the port.
            with grpc.insecure_channel(served.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                with pytest.raises(grpc.RpcError) as missing:
                    job_service_pb2_grpc.JobServiceStub(channel).GetJob(pb.GetJobRequest(job_id=f"probe-{index}"))
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # The parent serves the sum over both processes.
        samples = scrape(metrics_port)
        labels = (
            ("grpc_code", "NOT_FOUND"),
            ("grpc_method", "GetJob"),
            ("grpc_service", "jobqueue.v1.JobService"),
            ("grpc_type", "unary"),
        )
        assert samples[("grpc_server_handled_total", labels)] == probes
    finally:
        assert served.stop() == 0

    entries = [json.loads(line) for line in served.log_lines()]
    answered_by = {entry["job_id"]: entry["pid"] for entry in entries if entry.get("job_id", "").startswith("probe-")}
    assert len(answered_by) == probes
    assert set(answered_by.values()) == child_pids
    # Only the sweeper process runs the recovery scheduler.
    schedulers = [entry["pid"] for entry in entries if entry["message"].startswith("recovery scheduler started")]
    assert schedulers == [sweeper_pid]
    for pid in child_pids | {sweeper_pid}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert run_cli("health", "--target", served.target, "--timeout", "2").returncode != 0


@pytest.fixture
def port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield str(taken.getsockname()[1])


BAD_CONFIGURATIONS = [
    (["--database-url", "not a database url"], {}, "--database-url"),
    (["--database-url", "mysql://localhost/jobs"], {}, "--database-url"),
    (["--shutdown-grace", "-1"], {}, "--shutdown-grace"),
    (["--health-check-interval", "0"], {}, "--health-check-interval"),
    (["--metrics-port", "70000"], {}, "--metrics-port"),
    (["--workers", "0"], {}, "--workers"),
    (["--max-waiting-leases", "64"], {}, "--max-waiting-leases"),
    (["--log-format", "xml"], {}, "--log-format"),
    ([], {"QUEUE_PORT": "fifty"}, "QUEUE_PORT"),
    ([], {"QUEUE_SHUTDOWN_GRACE": "soon"}, "QUEUE_SHUTDOWN_GRACE"),
    (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], {}, "--tls-cert"),
]


@pytest.mark.parametrize(("args", "env", "named"), BAD_CONFIGURATIONS)
def test_bad_configuration_exits_non_zero_with_a_message(tmp_path, args, env, named):
    port = [] if "QUEUE_PORT" in env else ["--port", "0"]
    result = run_cli("serve", *port, "--database-url", sqlite_url(tmp_path), *args, env=base_env(**env), timeout=30)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert named in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_exits_non_zero_with_a_message(tmp_path, port_in_use, workers):
    result = run_cli("serve", "--port", port_in_use, "--workers", workers, "--database-url", sqlite_url(tmp_path))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port_in_use}" in result.stderr


def test_metrics_port_in_use_exits_non_zero_with_a_message(tmp_path, port_in_use):
    result = run_cli("serve", "--port", "0", "--metrics-port", port_in_use, "--database-url", sqlite_url(tmp_path))
    assert result.returncode == 2
    assert "--metrics-port" in result.stderr


def test_health_over_mutual_tls(database_url, tmp_path):
    ca = CertificateAuthority(tmp_path)
    server_pair, client_pair = ca.issue("queue server", server=True), ca.issue("probe", server=False)
    tls = TlsFiles(str(server_pair.certificate), str(server_pair.key), str(ca.pair.certificate))
    server = QueueServer(make_config(database_url, tls=tls)).start()
    try:
        target = f"localhost:{server.port}"
        plain = run_cli("health", "--target", target, "--timeout", "2")
        assert plain.returncode != 0
        without_client_certificate = run_cli(
            "health", "--target", target, "--timeout", "2", "--tls-ca", str(ca.pair.certificate)
        )
        assert without_client_certificate.returncode != 0
        mutual = run_cli(
            "health",
            "--target",
            f"127.0.0.1:{server.port}",
            "--tls-server-name",
            "localhost",
            "--tls-ca",
            str(ca.pair.certificate),
            "--tls-cert",
            str(client_pair.certificate),
            "--tls-key",
            str(client_pair.key),
        )
        assert mutual.returncode == 0, mutual.stderr
    finally:
        server.stop(0)
