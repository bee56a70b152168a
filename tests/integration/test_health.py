"""grpc.health.v1 follows the database: NOT_SERVING while it is unreachable, SERVING once it answers again."""

from __future__ import annotations

import socket
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc
from sqlalchemy.engine import make_url

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.config import ConfigError
from tests.conftest import make_config

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Client:
    def __init__(self, server: QueueServer) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.jobs = job_service_pb2_grpc.JobServiceStub(self.channel)

    def statuses(self) -> set[int]:
        return {
            self.health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            for name in ("", "jobqueue.v1.JobService")
        }

    def wait_for(self, status: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.statuses() != {status}:
            assert time.monotonic() < deadline, (
                f"health never became {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
            )
            time.sleep(0.05)

    def enqueue_code(self, job_id: str) -> grpc.StatusCode:
        try:
            self.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id=job_id), timeout=30)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


def running(url: str):
    server = QueueServer(make_config(url), clock=FakeClock()).start()
    return server, Client(server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serving_over_a_working_database(database_url):
    server, client = running(database_url)
    try:
        client.wait_for(SERVING)
        assert client.enqueue_code("ok") == grpc.StatusCode.OK
    finally:
        client.channel.close()
        server.stop(0)


def test_sqlite_file_that_cannot_be_opened_stops_the_start(tmp_path):
    blocked = tmp_path / "jobs.sqlite3"
    blocked.mkdir()  # a directory where the database file should be: unopenable, even for root
    with pytest.raises(ConfigError, match="cannot use SQLite database .*jobs.sqlite3: unable to open database file"):
        QueueServer(make_config(f"sqlite:///{blocked}"), clock=FakeClock())


@pytest.mark.postgres
def test_postgresql_on_a_closed_port(postgres_session_url):
    url = make_url(postgres_session_url).set(host="127.0.0.1", port=free_port())
    server, client = running(url.render_as_string(hide_password=False))
    try:
        client.wait_for(NOT_SERVING)
        assert client.enqueue_code("while-down") == grpc.StatusCode.UNAVAILABLE
    finally:
        client.channel.close()
        server.stop(0)


class TcpProxy:
    """Forwards a local port to PostgreSQL; `stop` drops every connection, `start` accepts again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the accepting thread
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.postgres
def test_postgresql_going_away_and_coming_back(postgres_session_url):
    real = make_url(postgres_session_url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    proxy.start()
    server, client = running(real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        client.wait_for(SERVING)
        assert client.enqueue_code("before") == grpc.StatusCode.OK
        proxy.stop()
        client.wait_for(NOT_SERVING)
        assert client.enqueue_code("during") == grpc.StatusCode.UNAVAILABLE
        proxy.start()
        client.wait_for(SERVING)
        assert client.enqueue_code("after") == grpc.StatusCode.OK
    finally:
        client.channel.close()
        server.stop(0)
        proxy.stop()
