"""Celery tracking: every run of a task is reported to the job service, whose decision is binding.

    from celery import Celery
    from jobqueue.integrations.celery import TrackedTask

    app = Celery("shop", broker="amqp://guest:guest@localhost:5672//")
    app.conf.jobqueue_target = "localhost:50051"        # or QUEUE_TARGET; token: jobqueue_token / QUEUE_TOKEN

    @app.task(base=TrackedTask, non_retryable_errors=(ValueError,))
    def send_email(to):
        ...

Each run reports TrackStart (the service counts the attempt; the Celery task id is the job id),
then TrackCompletion with the return value, or TrackFailure with the exception's type, message
and traceback. On a failure the service decides: a retry is `self.retry(countdown=<the service's
retry_delay>)`; a dead-letter decision re-raises the exception, so the task fails and Celery runs
it no more. NonRetryableError, and the task's `non_retryable_errors`, go straight to the
dead-letter queue. A run the service refuses to start (the job is already completed or
dead-lettered) does not run.

When the service cannot be reached (UNAVAILABLE or DEADLINE_EXCEEDED after the client's own
retries), no report is dropped: the run is handed back to Celery with `self.retry(countdown=
unreachable_retry_delay)` and runs, and reports, again, so a task may run more than once
(make it idempotent, as any Celery task with retries). `unreachable_max_retries` (None: no
limit) bounds that; past it the task fails with the Unavailable error.

Leave retries to the service: a task that calls `self.retry()` itself, or sets Celery's
`autoretry_for`, retries at its own pace, unreported until its next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Retry

from jobqueue import _convert as convert
from jobqueue.connection import DEFAULT_TARGET, DEFAULT_TIMEOUT
from jobqueue.errors import DeadlineExceeded, JobQueueError, Unavailable
from jobqueue.job_client import JobClient
from jobqueue.models import Job
from jobqueue.worker import LOST_RUN_ERRORS, Heartbeat

logger = logging.getLogger(__name__)

# The report did not reach the service: the run goes back to Celery, to run and report again.
UNREACHABLE_ERRORS = (Unavailable, DeadlineExceeded)
# What job_data and results may hold at most before they are stored as a shortened repr.
MAX_REPR_LENGTH = 1000

# One client per Celery app and process: a prefork child makes its own after the fork.
_clients: dict[tuple[int, int], JobClient] = {}
_clients_lock = threading.Lock()


def json_document(value: Any, key: str) -> dict[str, Any] | None:
    """`value` as a JSON object for the service: a mapping as it is, anything else under `key`.

    A value protobuf's Struct cannot hold (a set, a custom object) is stored as its repr.
    """
    if value is None:
        return None
    document = dict(value) if isinstance(value, Mapping) else {key: value}
    try:
        convert.struct(document)
    except (TypeError, ValueError, AttributeError):
        return {f"{key}_repr": repr(value)[:MAX_REPR_LENGTH]}
    return document


class TrackedTask(Task):  # type: ignore[misc]  # celery ships no type information
    """A Celery Task base class that reports each run to the job service; see the module docstring."""

    # Celery's own limit is off: the service's retry policy decides when a task has had enough.
    max_retries = None
    # Exceptions that retrying cannot help: reported as non_retryable, straight to the dead-letter queue.
    non_retryable_errors: tuple[type[BaseException], ...] = ()
    # The service's queue for these jobs; by default the Celery queue the task came from.
    jobqueue_queue: str | None = None
    # A run whose report cannot reach the service runs again after this many seconds, at most
    # this many times (None: until the service answers).
    unreachable_retry_delay: float = 5.0
    unreachable_max_retries: int | None = None
    # Long runs tell the service they are alive, so that it does not count them as stalled.
    heartbeat_interval = timedelta(seconds=60)
    heartbeat_lease = timedelta(minutes=5)

    @property
    def job_client(self) -> JobClient:
        """This process's client for the task's app, made on first use (after a prefork worker has forked)."""
        key = (os.getpid(), id(self.app))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self.make_job_client()
            return client

    def make_job_client(self) -> JobClient:
        """The client to report with, from app.conf jobqueue_target / jobqueue_token / jobqueue_timeout
        or QUEUE_TARGET / QUEUE_TOKEN; override it for TLS or several targets."""
        conf = self.app.conf
        target: str | Sequence[str] = conf.get("jobqueue_target") or os.environ.get("QUEUE_TARGET") or DEFAULT_TARGET
        token = conf.get("jobqueue_token") or os.environ.get("QUEUE_TOKEN") or None
        timeout = conf.get("jobqueue_timeout") or DEFAULT_TIMEOUT
        return JobClient(target, token=token, timeout=timeout)

    def tracking_queue(self) -> str:
        delivery_info = self.request.delivery_info or {}
        return self.jobqueue_queue or delivery_info.get("routing_key") or self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:  # a plain function call, not a Celery run: nothing to report
            return super().__call__(*args, **kwargs)
        client = self.job_client
        job_id: str = request.id
        try:
            started = client.track_start(
                job_id,
                queue_name=self.tracking_queue(),
                job_name=self.name,
                job_data=json_document({"args": list(args), "kwargs": kwargs}, "arguments"),
                worker_id=request.hostname or "",
            )
        except UNREACHABLE_ERRORS as error:
            self._hand_back(job_id, "start", error)
        job = started.job
        began = time.monotonic()
        with Heartbeat(client, job, self.heartbeat_interval, self.heartbeat_lease):
            try:
                result = super().__call__(*args, **kwargs)
            except Retry:
                raise
            except Exception as error:
                self._report_failure(client, job, error)
        try:
            client.track_completion(
                job.job_id,
                job.attempt_number,
                result=json_document(result, "result"),
                processing_duration=timedelta(seconds=time.monotonic() - began),
            )
        except UNREACHABLE_ERRORS as error:
            self._hand_back(job_id, "completion", error)
        except LOST_RUN_ERRORS as error:
            logger.warning(
                "job %s attempt %d: the service refused the completion: %s", job_id, job.attempt_number, error
            )
        return result

    def _report_failure(self, client: JobClient, job: Job, error: Exception) -> NoReturn:
        """Report the failed run and raise what follows: Celery's Retry, or `error` to stop."""
        non_retryable = True if isinstance(error, self.non_retryable_errors) else None
        try:
            decision = client.track_failure(job.job_id, job.attempt_number, error, non_retryable=non_retryable)
        except UNREACHABLE_ERRORS as report_error:
            error.add_note(f"reporting this failure to the job service failed: {report_error!r}")
            self._hand_back(job.job_id, "failure", report_error)
        except JobQueueError as report_error:
            # Refused (a stale run: the job has moved on): this run must not steer the job any more.
            logger.warning(
                "job %s attempt %d: the service refused the failure report: %s",
                job.job_id,
                job.attempt_number,
                report_error,
            )
            error.add_note(f"the job service refused this failure report: {report_error!r}")
            raise error
        if decision.should_retry and decision.retry_delay is not None:
            raise self.retry(exc=error, countdown=decision.retry_delay.total_seconds())
        raise error  # dead-lettered: the task fails, and Celery runs it no more

    def _hand_back(self, job_id: str, report: str, error: JobQueueError) -> NoReturn:
        """Give the run back to Celery, to run and report again once the service can be reached."""
        limit = self.unreachable_max_retries
        if limit is not None and self.request.retries >= limit:
            logger.error("job %s: the %s report could not reach the job service; giving up: %r", job_id, report, error)
            raise error
        logger.warning(
            "job %s: the %s report could not reach the job service; running it again in %ss: %r",
            job_id,
            report,
            self.unreachable_retry_delay,
            error,
        )
        raise self.retry(exc=error, countdown=self.unreachable_retry_delay)
