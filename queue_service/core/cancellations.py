"""Job cancellation, of one job (CancelJob) or of a selection in bulk (CancelJobs), audited.

A job no run holds (WAITING, FAILED) becomes CANCELLED at once (Transition.CANCEL). A running
job is only marked, cancel_requested_at: its worker learns it at its next heartbeat, and the end
of that run makes the job CANCELLED (core/cancelled_runs.py). A bulk cancel walks its selection
in pages and cancels each job in its own transaction, as a bulk redrive does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from queue_service.core import audit, states
from queue_service.core.dead_letters import (
    DEFAULT_SAMPLE_SIZE,
    MAX_REDRIVE_IDS,
    MAX_SAMPLE_SIZE,
    PROGRESS_INTERVAL,
    REDRIVE_BATCH,
    Pacer,
    check_rate_limit,
)
from queue_service.core.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from queue_service.core.jobs import JobManager
from queue_service.core.states import Transition
from queue_service.core.validation import check_range, check_text, require_name
from queue_service.domain import (
    CANCEL_REQUESTABLE_STATES,
    CANCELLABLE_STATES,
    JobFilter,
    JobRecord,
    JobState,
    JobView,
)
from queue_service.store.repository import Repository

# Every state a cancellation applies to: cancelled at once, or asked to stop.
CANCEL_STATES = tuple(state for state in JobState if state in (*CANCELLABLE_STATES, *CANCEL_REQUESTABLE_STATES))
# A bulk cancel keeps the limits and the pace of a bulk redrive.
MAX_CANCEL_IDS = MAX_REDRIVE_IDS
CANCEL_BATCH = REDRIVE_BATCH


class CancelResult(StrEnum):
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    # Cancelled, or asked to stop, before this call: nothing changed.
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class CancelOutcome:
    job: JobView
    result: CancelResult


@dataclass(frozen=True)
class BulkCancelRequest:
    """Either `filter` (jobs matching it) or exactly `ids`."""

    filter: JobFilter | None = None
    ids: tuple[str, ...] = ()
    dry_run: bool = False
    rate_limit: float = 0.0
    max_jobs: int = 0
    sample_size: int = 0
    reason: str = ""


@dataclass
class BulkCancelProgress:
    matched_count: int
    cancelled_count: int = 0
    cancel_requested_count: int = 0
    skipped_count: int = 0
    done: bool = False
    sample: list[JobView] = field(default_factory=list)
    cancelled_ids: list[str] = field(default_factory=list)
    cancel_requested_ids: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _not_cancellable(job: JobRecord, field_name: str) -> FailedPrecondition:
    allowed = ", ".join(state.value.upper() for state in CANCEL_STATES)
    return FailedPrecondition(
        f"job {job.job_id!r} is {job.state.value.upper()}; only {allowed} jobs can be cancelled",
        field=field_name,
        reason="INVALID_JOB_STATE",
    )


def _selectable(job: JobRecord) -> bool:
    """Whether cancelling the job would change it."""
    if job.state in CANCEL_REQUESTABLE_STATES:
        return job.cancel_requested_at is None
    return job.state in CANCELLABLE_STATES


class CancellationManager:
    def __init__(self, jobs: JobManager, *, sleep: Callable[[float], Any] = time.sleep) -> None:
        self.jobs = jobs
        self.database = jobs.database
        self.clock = jobs.clock
        self.sleep = sleep

    @property
    def limits(self):
        return self.jobs.limits

    def cancel(self, job_id: str, *, actor: str, reason: str = "") -> CancelOutcome:
        require_name(job_id, "job_id", self.limits.max_job_id_length)
        check_text(reason, "reason", self.limits.max_text_length)
        with self.database.transaction() as repo:
            return self._cancel_in(repo, job_id, actor=actor, reason=reason, operation_id=None, field_name="job_id")

    def _cancel_in(
        self,
        repo: Repository,
        job_id: str,
        *,
        actor: str,
        reason: str,
        operation_id: str | None,
        field_name: str,
    ) -> CancelOutcome:
        job = repo.get_job(job_id, for_update=True)
        if job is None:
            raise NotFound(f"job {job_id!r} not found", field=field_name)
        now = self.clock.now()
        if job.state == JobState.CANCELLED or (job.state in CANCEL_REQUESTABLE_STATES and job.cancel_requested_at):
            return CancelOutcome(self.jobs.views(repo, [job])[job_id], CancelResult.UNCHANGED)
        if job.state in CANCEL_REQUESTABLE_STATES:
            updated = repo.request_cancel(job, expected_states=CANCEL_REQUESTABLE_STATES, now=now)
            if updated is None:
                raise Aborted(f"job {job_id!r} changed concurrently; retry the call", field=field_name)
            result = CancelResult.CANCEL_REQUESTED
        elif job.state in CANCELLABLE_STATES:
            updated = repo.cancel_job(job, expected_states=states.sources(Transition.CANCEL), now=now)
            updated = self.jobs.record_transition(repo, job, Transition.CANCEL, updated)
            result = CancelResult.CANCELLED
        else:
            raise _not_cancellable(job, field_name)
        parameters: dict[str, Any] = {
            "queue_name": job.queue_name,
            "state": job.state.value,
            "attempt_number": job.attempt_number,
            "result": result.value,
        }
        if reason:
            parameters["reason"] = reason
        if operation_id:
            parameters["operation_id"] = operation_id
        audit.record(
            repo,
            actor=actor,
            action="CancelJob",
            target=audit.job_target(job_id),
            parameters=parameters,
            now=now,
        )
        return CancelOutcome(self.jobs.views(repo, [updated])[job_id], result)

    # Bulk cancel

    def cancel_many(
        self, request: BulkCancelRequest, *, actor: str, is_active: Callable[[], bool] = lambda: True
    ) -> Iterator[BulkCancelProgress]:
        """Cancel each selected job exactly as `cancel` does, each in its own transaction.

        Yields progress at least every CANCEL_BATCH jobs or PROGRESS_INTERVAL, then a final
        message with done = True. Jobs created after the cancel started are not included.
        """
        query, ids = self._check_request(request)
        sample_size = check_range(request.sample_size, "sample_size", 0, MAX_SAMPLE_SIZE) or DEFAULT_SAMPLE_SIZE
        started_at = self.clock.now()
        if query is not None:
            before = started_at + timedelta(microseconds=1)
            if query.created_before is None or query.created_before > before:
                query = replace(query, created_before=before)
        with self.database.transaction() as repo:
            if query is not None:
                matched = repo.count_matching_jobs(query)
                found = repo.matching_jobs(query, after_id=None, limit=sample_size) if request.dry_run else []
            else:
                jobs = repo.get_jobs(ids)
                matched = len(ids)
                found = [jobs[job_id] for job_id in ids if job_id in jobs and _selectable(jobs[job_id])][:sample_size]
            sample = list(self.jobs.views(repo, found).values()) if request.dry_run else []
        if request.max_jobs:
            matched = min(matched, request.max_jobs)
        if request.dry_run:
            yield BulkCancelProgress(matched_count=matched, done=True, sample=sample)
            return

        operation_id = str(uuid.uuid4())
        with self.database.transaction() as repo:
            audit.record(
                repo,
                actor=actor,
                action="CancelJobs",
                target=f"queue/{query.queue_name or '*'}" if query else "queue/*",
                parameters={
                    "operation_id": operation_id,
                    "filter": _json_filter(query) if query else None,
                    "ids": list(ids) if query is None else None,
                    "rate_limit": request.rate_limit,
                    "max_jobs": request.max_jobs,
                    "reason": request.reason,
                    "matched_count": matched,
                },
                now=started_at,
            )
        yield BulkCancelProgress(matched_count=matched)

        progress = BulkCancelProgress(matched_count=matched)
        pacer = Pacer(request.rate_limit, self.clock, self.sleep)
        last_report = self.clock.now()
        processed = 0
        for job_id in self._selected_ids(query, ids, matched):
            if not pacer.wait(is_active):
                break
            try:
                with self.database.transaction() as repo:
                    outcome = self._cancel_in(
                        repo,
                        job_id,
                        actor=actor,
                        reason=request.reason,
                        operation_id=operation_id,
                        field_name="ids.ids",
                    )
                if outcome.result == CancelResult.CANCELLED:
                    progress.cancelled_count += 1
                    progress.cancelled_ids.append(job_id)
                elif outcome.result == CancelResult.CANCEL_REQUESTED:
                    progress.cancel_requested_count += 1
                    progress.cancel_requested_ids.append(job_id)
                else:
                    progress.skipped_count += 1
                    progress.skipped.append((job_id, f"job {job_id!r} was cancelled already"))
            except (FailedPrecondition, NotFound, Aborted) as error:
                progress.skipped_count += 1
                progress.skipped.append((job_id, error.message))
            processed += 1
            now = self.clock.now()
            if processed % CANCEL_BATCH == 0 or now - last_report >= PROGRESS_INTERVAL:
                yield self._report(progress)
                last_report = now
        progress.done = True
        yield self._report(progress)

    def _selected_ids(self, query: JobFilter | None, ids: tuple[str, ...], limit: int) -> Iterator[str]:
        if query is None:
            yield from ids[:limit]
            return
        after_id = None
        remaining = limit
        while remaining > 0:
            with self.database.transaction() as repo:
                batch = repo.matching_jobs(query, after_id=after_id, limit=min(CANCEL_BATCH, remaining))
            if not batch:
                return
            yield from (job.job_id for job in batch)
            remaining -= len(batch)
            after_id = batch[-1].id

    @staticmethod
    def _report(progress: BulkCancelProgress) -> BulkCancelProgress:
        """A snapshot to send, then start collecting the next message's ids afresh."""
        report = replace(
            progress,
            cancelled_ids=list(progress.cancelled_ids),
            cancel_requested_ids=list(progress.cancel_requested_ids),
            skipped=list(progress.skipped),
        )
        progress.cancelled_ids.clear()
        progress.cancel_requested_ids.clear()
        progress.skipped.clear()
        return report

    def _check_request(self, request: BulkCancelRequest) -> tuple[JobFilter | None, tuple[str, ...]]:
        limits = self.limits
        check_rate_limit(request.rate_limit)
        check_range(request.max_jobs, "max_jobs", 0, 2**31 - 1)
        check_text(request.reason, "reason", limits.max_text_length)
        if request.filter is not None and request.ids:
            raise InvalidArgument("give either filter or ids, not both", field="ids")
        if request.filter is None:
            if not request.ids:
                raise InvalidArgument("a bulk cancel needs a filter or ids", field="filter")
            if len(request.ids) > MAX_CANCEL_IDS:
                raise InvalidArgument(f"ids.ids has more than {MAX_CANCEL_IDS} entries", field="ids.ids")
            for job_id in request.ids:
                require_name(job_id, "ids.ids", limits.max_job_id_length)
            return None, tuple(dict.fromkeys(request.ids))
        query = request.filter
        check_text(query.queue_name or "", "filter.queue_name", limits.max_name_length)
        check_text(query.job_name or "", "filter.job_name", limits.max_name_length)
        for state in query.states:
            if state not in CANCEL_STATES:
                allowed = ", ".join(state.value.upper() for state in CANCEL_STATES)
                raise InvalidArgument(
                    f"filter.states names {state.value.upper()}; only {allowed} jobs can be cancelled",
                    field="filter.states",
                )
        if query.created_after and query.created_before and query.created_after >= query.created_before:
            raise InvalidArgument(
                "filter.created_after must be before filter.created_before", field="filter.created_after"
            )
        chosen = tuple(state for state in CANCEL_STATES if state in query.states) or CANCEL_STATES
        return replace(query, states=chosen), ()


def _json_filter(query: JobFilter) -> dict[str, Any]:
    return {
        "queue_name": query.queue_name,
        "states": [state.value for state in query.states],
        "job_name": query.job_name,
        "created_after": query.created_after.isoformat() if query.created_after else None,
        "created_before": query.created_before.isoformat() if isinstance(query.created_before, datetime) else None,
    }
