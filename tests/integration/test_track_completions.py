"""TrackCompletions: many completions in one call, each by the rules of TrackCompletion."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.domain import JSON_TEXT
from tests.integration.admin_helpers import bad_field, enqueue, lease, rpc_error


def completion(job: job_pb2.Job, **fields) -> pb.TrackCompletionRequest:
    return pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number, **fields)


def get(service, job_id: str) -> job_pb2.Job:
    return service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job


def error_info(status) -> error_details_pb2.ErrorInfo:
    (detail,) = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    detail.Unpack(info)
    return info


def test_completes_every_job_with_its_result_and_duration(service):
    for index in range(3):
        enqueue(service, f"job-{index}")
    jobs = lease(service, max_jobs=3)
    service.clock.advance(2)
    response = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                completion(job, result={"n": index}, processing_duration=duration_pb2.Duration(seconds=index))
                for index, job in enumerate(jobs)
            ]
        )
    )

    assert [result.job_id for result in response.results] == [job.job_id for job in jobs]
    assert [result.status.code for result in response.results] == [code_pb2.OK] * 3
    for index, job in enumerate(jobs):
        stored = get(service, job.job_id)
        assert stored.state == job_pb2.Job.STATE_COMPLETED
        assert dict(stored.result) == {"n": index}
        assert stored.processing_duration.ToTimedelta() == timedelta(seconds=index)
        assert stored.completed_at.ToDatetime(tzinfo=service.clock.now().tzinfo) == service.clock.now()
        assert not stored.HasField("lease_expires_at")
    statistics = service.admin.GetStatistics(admin_pb.GetStatisticsRequest())
    (emails,) = statistics.queues
    assert (emails.active_count, emails.completed_count) == (0, 3)


def test_refuses_each_bad_completion_alone_with_the_single_call_status(service):
    for job_id in ("done", "stale", "waiting"):
        enqueue(service, job_id)
    done, stale = lease(service, max_jobs=2)
    response = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                completion(done),
                pb.TrackCompletionRequest(job_id="unknown", attempt_number=1),
                pb.TrackCompletionRequest(job_id=stale.job_id, attempt_number=stale.attempt_number + 1),
                pb.TrackCompletionRequest(job_id="waiting", attempt_number=0),
            ]
        )
    )

    codes = [result.status.code for result in response.results]
    assert codes == [code_pb2.OK, code_pb2.NOT_FOUND, code_pb2.FAILED_PRECONDITION, code_pb2.FAILED_PRECONDITION]
    assert error_info(response.results[1].status).metadata["field"] == "completions[1].job_id"
    assert error_info(response.results[2].status).reason == "STALE_ATTEMPT"
    assert error_info(response.results[2].status).metadata["field"] == "completions[2].attempt_number"
    assert error_info(response.results[3].status).reason == "INVALID_JOB_STATE"
    assert "WAITING" in response.results[3].status.message
    assert get(service, "done").state == job_pb2.Job.STATE_COMPLETED
    assert get(service, stale.job_id).state == job_pb2.Job.STATE_ACTIVE
    assert get(service, "waiting").state == job_pb2.Job.STATE_WAITING


def test_a_repeated_batch_succeeds_and_changes_nothing(service):
    enqueue(service, "job-1")
    (job,) = lease(service)
    request = pb.TrackCompletionsRequest(completions=[completion(job, result={"first": True})])
    service.jobs.TrackCompletions(request)
    completed_at = get(service, "job-1").completed_at
    service.clock.advance(10)

    repeated = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(completions=[completion(job, result={"second": True})])
    )

    assert repeated.results[0].status.code == code_pb2.OK
    stored = get(service, "job-1")
    assert stored.completed_at == completed_at
    assert dict(stored.result) == {"first": True}
    # A completion by a run that is not the last one still is refused.
    stale = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(completions=[pb.TrackCompletionRequest(job_id="job-1", attempt_number=2)])
    )
    assert stale.results[0].status.code == code_pb2.FAILED_PRECONDITION


def test_bad_input_rejects_the_whole_batch_and_writes_nothing(service):
    enqueue(service, "job-1")
    (job,) = lease(service)
    cases = {
        "completions": pb.TrackCompletionsRequest(),
        "completions[1].job_id": pb.TrackCompletionsRequest(completions=[completion(job), completion(job)]),
        "completions[1].result": pb.TrackCompletionsRequest(
            completions=[completion(job), pb.TrackCompletionRequest(job_id="x", result={"n": float("nan")})]
        ),
        "completions[1].processing_duration": pb.TrackCompletionsRequest(
            completions=[
                completion(job),
                pb.TrackCompletionRequest(job_id="x", processing_duration=duration_pb2.Duration(seconds=-1)),
            ]
        ),
        "completions[0].job_id": pb.TrackCompletionsRequest(completions=[pb.TrackCompletionRequest(attempt_number=1)]),
    }
    for field, request in cases.items():
        error = rpc_error(service.jobs.TrackCompletions, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert bad_field(error) == field
    assert get(service, "job-1").state == job_pb2.Job.STATE_ACTIVE


def test_a_batch_stores_what_single_completions_store(service, database):
    """The batch statement writes the same column values, JSON text included, as TrackCompletion."""
    for job_id in ("single", "batched"):
        enqueue(service, job_id)
    single, batched = lease(service, max_jobs=2)
    result = {"text": 'é\n"quoted"', "nested": {"list": [1, 2.5, None, True]}}
    duration = duration_pb2.Duration(seconds=3, nanos=250_000_000)
    service.jobs.TrackCompletion(completion(single, result=result, processing_duration=duration))
    service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(completions=[completion(batched, result=result, processing_duration=duration)])
    )

    with database.transaction() as repo:
        # As the driver returns them, not decoded by the column types: on SQLite, the stored text.
        rows = repo.connection.exec_driver_sql(
            "SELECT job_id, result, processing_duration_ms, completed_at, state, lease_expires_at FROM queue_jobs"
        ).all()
    stored = {row[0]: tuple(row[1:]) for row in rows}
    for job_id in ("single", "batched"):
        text = stored[job_id][0]
        if isinstance(text, str):  # SQLite: the compact text JSON_TEXT writes, as the column type does
            assert JSON_TEXT.encode(json.loads(text)) == text
            stored[job_id] = (json.loads(text), *stored[job_id][1:])
    # A Struct's keys come in no fixed order: the documents compare as documents.
    assert stored["single"] == stored["batched"]
    assert stored["batched"][1] == 3250
    assert stored["batched"][3:] == ("completed", None)
