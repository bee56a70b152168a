"""The hand-over between a server process and the sweeper, both in this process, over a real Unix socket."""

from __future__ import annotations

import secrets
import threading
from multiprocessing.connection import AuthenticationError, Client, Connection, Listener

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc

from queue_service.api.server import QueueServer
from queue_service.config import SweeperAddress
from queue_service.core.errors import Unavailable
from queue_service.core.jobs import JobManager
from queue_service.core.notify import ReadyNotifier
from queue_service.core.sweep.runner import Recovery
from queue_service.sweeper import Sweeper, SweeperClient
from tests.conftest import make_config
from tests.rpc_errors import error_details, rpc_error


@pytest.fixture
def address(tmp_path) -> SweeperAddress:
    return SweeperAddress(str(tmp_path / "sweeper.sock"), secrets.token_bytes(32))


@pytest.fixture
def sweeper(database_url, address):
    running = Sweeper(make_config(database_url), address).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_caller_without_the_key_is_refused_and_the_sweeper_goes_on(sweeper, address):
    with pytest.raises(AuthenticationError):
        Client(address.path, family="AF_UNIX", authkey=b"not the key")

    notifier = ReadyNotifier()
    client = SweeperClient(sweeper.core.recovery, address, notifier)
    run = client.run_once(actor="admin:ops")

    assert run.node_id == sweeper.core.recovery.node_id
    assert client.runs.stats().latest == run
    # The asking process's long-polls look again at once.
    assert notifier.versions(["emails"]) == {"emails": 1}


def test_a_sweeper_that_is_gone_is_unavailable_to_the_caller(database_url, address):
    server = QueueServer(make_config(database_url, sweeper=address)).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            error = rpc_error(admin.TriggerRecovery, admin_pb.TriggerRecoveryRequest(), timeout=10)
    finally:
        server.stop(0)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "the sweeper process is not reachable" in error.details()
    info, _ = error_details(error)
    assert info is not None and info.reason == "SWEEPER_UNAVAILABLE"


def test_the_client_raises_unavailable_when_nothing_listens(database, address, clock):
    client = SweeperClient(Recovery(JobManager(database, clock)), address, ReadyNotifier())
    with pytest.raises(Unavailable, match="not reachable"):
        client.run_once()


def test_stop_ends_the_threads_the_sweeper_started(database_url, address):
    running = Sweeper(make_config(database_url), address).start()
    SweeperClient(running.core.recovery, address, ReadyNotifier()).run_once()

    running.stop()

    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("sweeper-")]
    with pytest.raises(OSError):
        Client(address.path, family="AF_UNIX", authkey=address.authkey)


def test_a_server_stops_waiting_for_a_sweep_once_its_caller_has_gone(database_url, address):
    """A sweep that outlasts its caller's deadline: the serving process closes its connection to
    the sweeper at once, instead of holding an RPC thread until the sweep ends."""
    listener = Listener(address.path, family="AF_UNIX", authkey=address.authkey)
    handed_over: list[Connection] = []

    def sweeper_that_never_answers() -> None:
        connection = listener.accept()
        connection.recv()
        handed_over.append(connection)

    accepting = threading.Thread(target=sweeper_that_never_answers, daemon=True)
    accepting.start()
    server = QueueServer(make_config(database_url, sweeper=address)).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            error = rpc_error(admin.TriggerRecovery, admin_pb.TriggerRecoveryRequest(), timeout=0.5)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        accepting.join(10)
        [connection] = handed_over
        # The server's side closes: the sweeper's connection ends, with no reply on it.
        assert connection.poll(5), "the server still waits for the sweep its caller gave up on"
        with pytest.raises(EOFError):
            connection.recv()
    finally:
        for connection in handed_over:
            connection.close()  # a server still waiting gets EOF, and stops
        server.stop(0)
        listener.close()
