"""Concurrent workers: every job is leased exactly once (FOR UPDATE SKIP LOCKED on PostgreSQL)."""

import threading
from collections import Counter

import grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc
from sqlalchemy import select

from queue_service.store.schema import queue_jobs

JOBS = 1000
WORKERS = 8


def test_eight_workers_lease_a_thousand_jobs_exactly_once(service, database):
    service.jobs.EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[
                pb.EnqueueJobRequest(queue_name="bulk", job_name="n", job_id=f"job-{index:04d}", priority=index % 3)
                for index in range(JOBS)
            ]
        )
    )
    leased: dict[str, list[str]] = {f"worker-{index}": [] for index in range(WORKERS)}
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def work(worker_id: str) -> None:
        with grpc.insecure_channel(service.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            try:
                start.wait()
                while True:
                    response = stub.LeaseJobs(
                        pb.LeaseJobsRequest(queue_names=["bulk"], worker_id=worker_id, max_jobs=3), timeout=30
                    )
                    if not response.jobs:
                        return
                    leased[worker_id].extend(job.job_id for job in response.jobs)
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

    threads = [threading.Thread(target=work, args=(worker_id,)) for worker_id in leased]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors

    counts = Counter(job_id for jobs in leased.values() for job_id in jobs)
    assert [job_id for job_id, count in counts.items() if count > 1] == []
    assert len(counts) == JOBS
    with database.engine.connect() as connection:
        rows = connection.execute(
            select(queue_jobs.c.job_id, queue_jobs.c.state, queue_jobs.c.attempt_number, queue_jobs.c.worker_id)
        ).all()
    assert len(rows) == JOBS
    assert {(row.state, row.attempt_number) for row in rows} == {("active", 1)}
    # The stored holder is the worker that received the job: nobody's lease was overwritten.
    holder = {job_id: worker for worker, jobs in leased.items() for job_id in jobs}
    assert all(holder[row.job_id] == row.worker_id for row in rows)
    assert sum(1 for jobs in leased.values() if jobs) > 1, "one worker leased everything; no concurrency was tested"
