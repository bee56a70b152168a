"""`queue-service serve` as a process: graceful shutdown on SIGTERM and SIGINT, restart right after kill -9."""

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from jobqueue import JobClient
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from tests.e2e.server_process import serve
from tests.reliability.processes import ServerProcess, wait_for

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


def living_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (a zombie holds no socket any more)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_workers_restart_at_once_on_the_same_port_after_kill_9(tmp_path):
    """A crash leaves the dead server's connections in TIME_WAIT; the next start must not trip over them."""
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    server = ServerProcess(url, tmp_path / "server.log", args=("--workers", "2", "--shutdown-grace", "0")).start()
    try:
        stop = threading.Event()
        acknowledged: list[str] = []

        def produce(worker: int) -> None:
            with JobClient(server.target, timeout=5) as client:
                for round_number in range(100_000):
                    if stop.is_set():
                        return
                    job_id = f"w{worker}-{round_number}"
                    try:
                        client.enqueue("restart", "n", {}, job_id=job_id)
                    except Exception:  # noqa: BLE001 - calls cut by the kill may fail
                        continue
                    acknowledged.append(job_id)

        producers = [threading.Thread(target=produce, args=(index,), daemon=True) for index in range(4)]
        for producer in producers:
            producer.start()
        wait_for(lambda: len(acknowledged) >= 40, timeout=60, message="load on the server")
        # Idle connections too, one each (channels of one process otherwise share a connection): closed by
        # the dead server's side, they stay in TIME_WAIT there.
        idle = [grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(8)]
        for index, channel in enumerate(idle):
            job_service_pb2_grpc.JobServiceStub(channel).EnqueueJob(
                pb.EnqueueJobRequest(queue_name="restart", job_name="n", job_id=f"idle-{index}"), timeout=5
            )
            acknowledged.append(f"idle-{index}")
        time.sleep(1)  # long enough for the server to have read everything they sent
        group = server.pid
        server.kill()
        wait_for(lambda: not living_members(group), timeout=10, message="the killed server processes to exit")
        stop.set()
        for producer in producers:
            producer.join(timeout=30)

        for channel in idle:
            channel.close()
        server.start()  # at once, on the same port
        with JobClient(server.target, timeout=10) as client:
            missing = [job_id for job_id in acknowledged if client.get_job(job_id).job.job_id != job_id]
        assert not missing
        assert server.stop() == 0, server.log_tail()
    finally:
        server.kill()
