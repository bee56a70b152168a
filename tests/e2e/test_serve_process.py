"""`queue-service serve` as a process: graceful shutdown on SIGTERM and SIGINT."""

import signal
import threading
import time
from datetime import timedelta

import grpc
import pytest
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from tests.e2e.server_process import serve

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_gracefully(tmp_path, signum):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    with serve(url, tmp_path) as server, grpc.insecure_channel(server.address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="kept"))
        outcome = {}

        def long_poll():
            try:
                request = pb.LeaseJobsRequest(queue_names=["idle"], wait=timedelta(seconds=60))
                outcome["jobs"] = list(jobs.LeaseJobs(request, timeout=90).jobs)
            except grpc.RpcError as error:
                outcome["error"] = error.code()

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.5)
        server.process.send_signal(signum)
        assert server.process.wait(timeout=30) == 0, server.log()
        poller.join(timeout=30)
        # The waiting worker got an ordinary empty answer instead of a cancelled call.
        assert outcome == {"jobs": []}
        assert "shutting down" in server.log()

    # The job written before the signal is still there for the next start.
    with serve(url, tmp_path) as server, grpc.insecure_channel(server.address) as channel:
        job = job_service_pb2_grpc.JobServiceStub(channel).GetJob(pb.GetJobRequest(job_id="kept")).job
        assert job.job_id == "kept"
        assert server.terminate() == 0
