"""The empty-gRPC ceiling: the service's own JobService messages over grpcio, with no work in the handlers.

Each process is a grpc.server with the options and thread pool of `queue-service serve`, bound to
the same port with SO_REUSEPORT as `serve --workers N` binds its processes; no database, no
interceptors. What a client measures against it is the most any Python gRPC service can reach on
this machine with the same calls.

Run as `python -m benchmarks.empty_grpc --port PORT`: one process, which prints `listening on` once bound.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.rpc import status_pb2
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import MAX_PENDING_CALLS
from queue_service.config import ServerConfig
from queue_service.stop_signals import StopSignals


def _leased_job(job_id: str, queue_name: str, worker_id: str, n: int, now: timestamp_pb2.Timestamp) -> job_pb2.Job:
    """A job as a lease returns it, with the payload and timestamps the batched scenario's jobs carry."""
    data = struct_pb2.Struct()
    data.update({"to": f"user-{n}@example.com", "n": n})
    return job_pb2.Job(
        job_id=job_id,
        queue_name=queue_name,
        job_name="send",
        job_data=data,
        state=job_pb2.Job.STATE_ACTIVE,
        attempt_number=1,
        remaining_retries=3,
        run_at=now,
        lease_expires_at=now,
        worker_id=worker_id,
        created_at=now,
        updated_at=now,
        started_at=now,
    )


OK = status_pb2.Status()


class EmptyJobService(job_service_pb2_grpc.JobServiceServicer):
    """Answers the calls of the one-job-per-call, batched and latency scenarios with messages built per call, as
    the service's would be, without reading or writing anything."""

    def EnqueueJob(self, request, context):  # noqa: N802 - gRPC method name
        return pb.EnqueueJobResponse(job=job_pb2.Job(job_id=request.job_id), created=True)

    def LeaseJobs(self, request, context):  # noqa: N802
        if request.max_jobs > 1:
            return self._lease_batch(request)
        return pb.LeaseJobsResponse(jobs=[job_pb2.Job(job_id=request.worker_id, attempt_number=1)])

    def TrackCompletion(self, request, context):  # noqa: N802
        return pb.TrackCompletionResponse(job=job_pb2.Job(job_id=request.job_id, attempt_number=request.attempt_number))

    def TrackFailure(self, request, context):  # noqa: N802
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        return pb.TrackFailureResponse(
            should_retry=True,
            retry_delay=duration_pb2.Duration(seconds=1),
            next_retry_at=now,
            remaining_retries=2,
            job=job_pb2.Job(
                job_id=request.job_id,
                attempt_number=request.attempt_number,
                state=job_pb2.Job.STATE_FAILED,
                last_error=request.error,
                updated_at=now,
            ),
        )

    def EnqueueJobs(self, request, context):  # noqa: N802
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        return pb.EnqueueJobsResponse(
            results=[
                pb.EnqueueJobResponse(
                    job=job_pb2.Job(
                        job_id=item.job_id,
                        queue_name=item.queue_name,
                        job_name=item.job_name,
                        job_data=item.job_data,
                        state=job_pb2.Job.STATE_WAITING,
                        remaining_retries=3,
                        run_at=now,
                        created_at=now,
                        updated_at=now,
                    ),
                    created=True,
                )
                for item in request.jobs
            ]
        )

    def _lease_batch(self, request):
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        queue = request.queue_names[0] if request.queue_names else ""
        return pb.LeaseJobsResponse(
            jobs=[
                _leased_job(f"{request.worker_id}-{n}", queue, request.worker_id, n, now)
                for n in range(max(1, request.max_jobs))
            ]
        )

    def TrackCompletions(self, request, context):  # noqa: N802
        return pb.TrackCompletionsResponse(
            results=[pb.TrackCompletionResult(job_id=item.job_id, status=OK) for item in request.completions]
        )


def serve(port: int) -> None:
    config = ServerConfig()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.grpc_threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 1),
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
        ],
    )
    job_service_pb2_grpc.add_JobServiceServicer_to_server(EmptyJobService(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop_signals = StopSignals((signal.SIGTERM,)).install()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop_signals.wait()
    server.stop(grace=1).wait()


class EmptyGrpcServers:
    """`processes` empty servers sharing one loopback port, stopped with SIGTERM."""

    def __init__(self, port: int, processes: int, log_dir: Path) -> None:
        self.target = f"127.0.0.1:{port}"
        self.log = (log_dir / f"empty-grpc-{port}.log").open("w")
        self.processes: list[subprocess.Popen] = []
        try:
            for _ in range(processes):
                process = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.empty_grpc", "--port", str(port)],
                    stdout=subprocess.PIPE,
                    stderr=self.log,
                    text=True,
                )
                self.processes.append(process)
                line = process.stdout.readline()
                if "listening on" not in line:
                    raise RuntimeError(f"the empty gRPC server did not start: {line!r}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def server_processes(backend: str, workers: int | None) -> int:
    """As many processes as `queue-service serve` runs: --workers, else one per core on PostgreSQL, one on SQLite."""
    if workers:
        return workers
    if backend == "sqlite":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.empty_grpc")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
