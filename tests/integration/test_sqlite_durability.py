"""SQLite commits are durable: WAL with synchronous=FULL on the connections the server commits on."""

from __future__ import annotations

import shutil

import grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from queue_service.api.server import QueueServer
from tests.conftest import make_config

# PRAGMA synchronous answers with a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
SYNCHRONOUS_FULL = 2


def test_a_serving_sqlite_connection_syncs_every_commit(sqlite_template, tmp_path):
    path = tmp_path / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    server = QueueServer(make_config(f"sqlite:///{path}")).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            job_service_pb2_grpc.JobServiceStub(channel).EnqueueJob(
                pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="durable")
            )
        # The pooled connection that just committed the acknowledged enqueue is the one asked.
        with server.database.transaction() as repo:
            journal_mode = repo.connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            synchronous = repo.connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    finally:
        server.stop(0)

    assert (journal_mode, synchronous) == ("wal", SYNCHRONOUS_FULL)
