"""The asyncio Worker: leases jobs, awaits a handler per job, heartbeats while it runs, reports the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from jobqueue.aio.job_client import JobClient
from jobqueue.cancellation import JobCancelled, run_flag
from jobqueue.errors import JobQueueError
from jobqueue.models import FailureResult, Job, JobState
from jobqueue.tracing import RunSpan, run_span
from jobqueue.worker import LOST_RUN_ERRORS, TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

AsyncHandler = Callable[[Job], Awaitable[Mapping[str, Any] | None]]


class Worker:
    """Awaits `handler(job)` for each job leased from `queues`, `concurrency` jobs at a time.

    The asyncio counterpart of jobqueue.Worker, with the same options and outcomes: the
    handler's return value (a dict, or None) is the job's result; an exception is reported
    as a failure with its type, message and traceback (NonRetryableError, RetryAfterError
    steer the decision). `stop()` (or SIGINT/SIGTERM during `run()`) lets running handlers
    finish and report, then `run()` returns; a long-poll in progress ends within `poll_wait`.

    Cancellation: when a heartbeat learns that an operator cancelled the running job, the worker
    cancels the handler's task, so the handler receives asyncio.CancelledError at its next await
    (`jobqueue.cancel_requested()` is True from then on). It may clean up and re-raise, raise
    JobCancelled, or even return; whatever the run then reports, the job ends CANCELLED and is
    not retried. Such runs are counted in `cancelled`.
    """

    def __init__(
        self,
        client: JobClient,
        queues: str | Sequence[str],
        handler: AsyncHandler,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        lease_duration: timedelta = timedelta(seconds=60),
        heartbeat_interval: timedelta | None = None,
        poll_wait: timedelta = timedelta(seconds=5),
        error_backoff: timedelta = timedelta(seconds=1),
        tracer_provider: Any = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_duration <= timedelta(0):
            raise ValueError("lease_duration must be positive")
        self.client = client
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        self.handler = handler
        # Each run's span joins the job's trace (see jobqueue.tracing); None: the global provider.
        self.tracer_provider = tracer_provider
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.lease_duration = lease_duration
        self.heartbeat_interval = heartbeat_interval or lease_duration / 3
        if self.heartbeat_interval >= lease_duration:
            raise ValueError("heartbeat_interval must be shorter than lease_duration")
        self.poll_wait = poll_wait
        self.error_backoff = error_backoff
        self.completed = 0
        self.failed = 0
        # Runs that ended with their job CANCELLED (counted neither completed nor failed).
        self.cancelled = 0
        self._stopping = asyncio.Event()
        self._fatal: BaseException | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop leasing; `run()` returns once the running handlers have finished and reported."""
        self._stopping.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Work until `stop()`, SIGINT or SIGTERM (signals only in the main thread), or a fatal error."""
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
                handled.append(sig)
        self._stopping.clear()
        self._fatal = None
        try:
            await asyncio.gather(*(self._guarded_loop() for _ in range(self.concurrency)))
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        if self._fatal is not None:
            raise self._fatal

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received %s: finishing running jobs, then stopping", sig.name)
        self.stop()

    # One slot's work

    async def _guarded_loop(self) -> None:
        try:
            await self._loop()
        except Exception as error:  # noqa: BLE001 - stop every slot and surface it from run()
            logger.error("worker stopping: leasing from %s failed: %r", ", ".join(self.queues), error)
            if self._fatal is None:
                self._fatal = error
            self._stopping.set()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                jobs = await self.client.lease(
                    self.queues,
                    worker_id=self.worker_id,
                    max_jobs=1,
                    lease_duration=self.lease_duration,
                    wait=self.poll_wait,
                )
            except TRANSIENT_ERRORS as error:
                logger.warning("leasing from %s failed, retrying: %r", ", ".join(self.queues), error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.error_backoff.total_seconds())
                continue
            for job in jobs:  # leased jobs are run even while stopping: they are ours now
                await self.process(job)

    async def process(self, job: Job) -> bool:
        """Run the handler for one leased job and report the outcome; True if it completed."""
        with run_span(job, self.tracer_provider) as span:
            return await self._process(job, span)

    async def _process(self, job: Job, span: RunSpan) -> bool:
        began = time.monotonic()
        lost = asyncio.Event()
        cancel_requested = threading.Event()
        with run_flag(cancel_requested):
            # Its own task, made here so that it sees the run's cancel flag, and so that a
            # cancellation can cancel the handler alone.
            handler = asyncio.ensure_future(self._call_handler(job))
        heartbeat = asyncio.create_task(self._heartbeat(job, lost, cancel_requested, handler))
        outcome: BaseException | None = None
        result: Mapping[str, Any] | None = None
        try:
            result = await handler
            if result is not None and not isinstance(result, Mapping):
                raise TypeError(f"the job handler returned {type(result).__name__}; return a dict or None")
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not cancel_requested.is_set() or (current is not None and current.cancelling()):
                raise  # the worker itself is being cancelled
            outcome = JobCancelled()
        except Exception as error:  # noqa: BLE001 - every handler failure is reported to the service
            outcome = error
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if outcome is None:
            completions: list[Job] = []

            async def complete() -> None:
                completions.append(
                    await self.client.track_completion(
                        job.job_id,
                        job.attempt_number,
                        result=result,
                        processing_duration=timedelta(seconds=time.monotonic() - began),
                    )
                )

            reported = await self._report(job, lost.is_set(), complete())
            if completions and completions[0].state == JobState.CANCELLED:
                logger.info("job %s (attempt %d) finished after its job was cancelled", job.job_id, job.attempt_number)
                self._count(cancelled=True)
                return False
            self._count(completed=reported)
            return reported
        if isinstance(outcome, JobCancelled) or cancel_requested.is_set():
            logger.info("job %s (attempt %d) stopped: the job was cancelled", job.job_id, job.attempt_number)
        else:
            logger.info("job %s (attempt %d) failed: %r", job.job_id, job.attempt_number, outcome)
            span.failed(outcome)
        decisions: list[FailureResult] = []

        async def fail() -> None:
            decisions.append(await self.client.track_failure(job.job_id, job.attempt_number, outcome))

        await self._report(job, lost.is_set(), fail())
        decided = decisions[0].job if decisions else None
        self._count(cancelled=decided is not None and decided.state == JobState.CANCELLED)
        return False

    async def _call_handler(self, job: Job) -> Mapping[str, Any] | None:
        return await self.handler(job)

    async def _heartbeat(
        self, job: Job, lost: asyncio.Event, cancel_requested: threading.Event, handler: asyncio.Future[Any]
    ) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval.total_seconds())
            try:
                beat = await self.client.heartbeat_status(
                    job.job_id, job.attempt_number, lease_duration=self.lease_duration
                )
            except LOST_RUN_ERRORS as error:
                lost.set()
                logger.warning("job %s lost its lease: %s", job.job_id, error)
                return
            except JobQueueError as error:
                # The next beat may get through; the lease outlasts a few missed ones.
                logger.warning("heartbeat for job %s failed: %r", job.job_id, error)
                continue
            if beat.cancel_requested and not cancel_requested.is_set():
                logger.info("job %s attempt %d: cancel requested", job.job_id, job.attempt_number)
                cancel_requested.set()
                handler.cancel()

    async def _report(self, job: Job, lost: bool, report: Awaitable[object]) -> bool:
        try:
            await report
            return True
        except LOST_RUN_ERRORS as error:
            logger.warning(
                "job %s attempt %d%s: the service rejected the report: %s",
                job.job_id,
                job.attempt_number,
                " lost its lease" if lost else "",
                error,
            )
        except JobQueueError as error:
            # The lease will expire and the service will count the run as failed.
            logger.error("reporting job %s attempt %d failed: %r", job.job_id, job.attempt_number, error)
        return False

    def _count(self, *, completed: bool = False, cancelled: bool = False) -> None:
        if completed:
            self.completed += 1
        elif cancelled:
            self.cancelled += 1
        else:
            self.failed += 1
