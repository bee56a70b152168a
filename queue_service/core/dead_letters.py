"""Dead-letter triage: list, read, retry, give up, annotate, group by fingerprint, bulk redrive.

Every change runs in one transaction with its audit event; job state changes go through
states.py (REDRIVE) with a compare-and-set on the job's state and attempt.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from queue_service.clock import Clock
from queue_service.core import audit, paging, states
from queue_service.core.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from queue_service.core.fingerprint import normalise_message
from queue_service.core.jobs import JobManager, JobView
from queue_service.core.retry import PolicyOverride, policy_to_json, validate_override
from queue_service.core.states import Transition
from queue_service.core.validation import check_document, check_range, check_text
from queue_service.domain import (
    HISTORY_HEAD,
    HISTORY_TAIL,
    DeadLetterFilter,
    DeadLetterRecord,
    DeadLetterSummary,
    FailurePatternRow,
    RecoveryStatus,
    RetryLogRecord,
    TriageChanges,
)
from queue_service.store.repository import Repository

# A failure pattern names at most this many of its queues, so that a page stays bounded however many there are.
MAX_PATTERN_QUEUES = 20
# Fields UpdateDeadLetterJob may change, with the largest value each takes.
UPDATABLE_FIELDS = ("admin_notes", "assigned_to", "priority")
MAX_ASSIGNEE_LENGTH = 255
MAX_SEARCH_LENGTH = 1000
MAX_REDRIVE_IDS = 1000
MAX_RATE_LIMIT = 10_000.0
# Slower than one job per 1000 s is not a rate limit but a stall (and 1/rate overflows a timedelta).
MIN_RATE_LIMIT = 0.001
DEFAULT_SAMPLE_SIZE = 10
MAX_SAMPLE_SIZE = 100
# Entries a bulk redrive reads per query; each is then retried in its own transaction.
REDRIVE_BATCH = 100
# A bulk redrive reports progress at least this often while it works.
PROGRESS_INTERVAL = timedelta(seconds=1)


# An audit event keeps a payload up to this size; a larger one by its size and SHA-256, so that a
# page of audit events stays within a client's reply limit.
AUDITED_PAYLOAD_BYTES = 32 * 1024


def audit_payload(parameters: dict[str, Any], name: str, payload: dict[str, Any]) -> None:
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) <= AUDITED_PAYLOAD_BYTES:
        parameters[name] = payload
    else:
        parameters[f"{name}_bytes"] = len(encoded)
        parameters[f"{name}_sha256"] = hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class DeadLetterDetails:
    entry: DeadLetterRecord
    job: JobView | None
    # The first and last retry decisions, and how many lie between.
    retry_log: list[RetryLogRecord]
    retry_log_omitted: int = 0


@dataclass(frozen=True)
class RetryOutcome:
    entry: DeadLetterRecord
    job: JobView


@dataclass(frozen=True)
class FailurePattern:
    row: FailurePatternRow
    normalised_message: str
    # The first MAX_PATTERN_QUEUES queues by name, of queue_count.
    queue_names: list[str]
    sample: DeadLetterSummary | None
    queue_count: int = 0


@dataclass(frozen=True)
class RedriveRequest:
    """Either `filter` (PENDING entries matching it) or exactly `ids`."""

    filter: DeadLetterFilter | None = None
    ids: tuple[str, ...] = ()
    dry_run: bool = False
    retry_policy: PolicyOverride | None = None
    rate_limit: float = 0.0
    max_jobs: int = 0
    sample_size: int = 0


@dataclass
class RedriveProgress:
    matched_count: int
    retried_count: int = 0
    skipped_count: int = 0
    done: bool = False
    sample: list[DeadLetterSummary] = field(default_factory=list)
    retried_ids: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def check_rate_limit(rate: float) -> None:
    """A bulk operation's pace: 0 for none, else within MIN_RATE_LIMIT..MAX_RATE_LIMIT jobs per second."""
    if rate != rate or not (rate == 0 or MIN_RATE_LIMIT <= rate <= MAX_RATE_LIMIT):
        raise InvalidArgument(
            f"rate_limit must be 0 (no limit) or between {MIN_RATE_LIMIT:g} and {MAX_RATE_LIMIT:g} jobs per second",
            field="rate_limit",
        )


class Pacer:
    """Spaces actions at most `rate` per second using the injected clock and sleep, so tests never wait."""

    def __init__(self, rate: float, clock: Clock, sleep: Callable[[float], Any]) -> None:
        self.interval = timedelta(seconds=1 / rate) if rate else timedelta(0)
        self.clock = clock
        self.sleep = sleep
        self.next_at: datetime | None = None

    def wait(self, is_active: Callable[[], bool]) -> bool:
        """Block until the next action may run; False when the caller went away meanwhile."""
        now = self.clock.now()
        while self.next_at is not None and now < self.next_at:
            if not is_active():
                return False
            # Short naps keep a cancelled call from holding a thread through a slow rate.
            self.sleep(min((self.next_at - now).total_seconds(), 0.5))
            now = self.clock.now()
        if self.interval:
            self.next_at = max(self.next_at or now, now) + self.interval
        return is_active()


def check_filter(query: DeadLetterFilter, prefix: str = "filter.") -> DeadLetterFilter:
    check_text(query.queue_name or "", f"{prefix}queue_name", 100)
    check_text(query.failure_reason_contains or "", f"{prefix}failure_reason_contains", MAX_SEARCH_LENGTH)
    check_text(query.error_type or "", f"{prefix}error_type", 255)
    check_text(query.fingerprint or "", f"{prefix}fingerprint", 64)
    check_text(query.assigned_to or "", f"{prefix}assigned_to", MAX_ASSIGNEE_LENGTH)
    if (
        query.dead_lettered_after
        and query.dead_lettered_before
        and query.dead_lettered_after >= query.dead_lettered_before
    ):
        raise InvalidArgument(
            f"{prefix}dead_lettered_after must be before {prefix}dead_lettered_before",
            field=f"{prefix}dead_lettered_after",
        )
    return query


def _filter_key(query: DeadLetterFilter) -> dict[str, Any]:
    return {name: value for name, value in asdict(query).items() if value}


class DeadLetterManager:
    def __init__(
        self,
        jobs: JobManager,
        *,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.jobs = jobs
        self.database = jobs.database
        self.clock = jobs.clock
        self.sleep = sleep

    @property
    def limits(self):
        return self.jobs.limits

    # Reads

    def list(
        self, query: DeadLetterFilter, *, page_size: int = 0, page_token: str = ""
    ) -> paging.Page[DeadLetterSummary]:
        check_filter(query)
        limit = paging.page_size(page_size)
        filters = _filter_key(query)
        key = self.jobs.page_tokens.decode(page_token, filters, shape=(int, datetime, str))
        with self.database.reading() as repo:
            entries, total = repo.dead_letter_page(query, after=tuple(key) if key else None, limit=limit + 1)
        token = self.jobs.page_tokens.next(entries, limit, lambda e: (e.priority, e.dead_lettered_at, e.id), filters)
        return paging.Page(entries[:limit], token, total)

    def get(self, entry_id: str) -> DeadLetterDetails:
        self._check_id(entry_id)
        with self.database.snapshot() as repo:
            entry = self._entry(repo, entry_id)
            job = repo.get_job(entry.job_id)
            view = self.jobs.views(repo, [job])[job.job_id] if job else None
            retry_log, omitted = repo.retry_log_excerpt(entry.job_id, head=HISTORY_HEAD, tail=HISTORY_TAIL)
            return DeadLetterDetails(entry, view, retry_log, omitted)

    # Triage

    def retry(
        self,
        entry_id: str,
        *,
        actor: str,
        retry_policy: PolicyOverride | None = None,
        job_data: dict[str, Any] | None = None,
    ) -> RetryOutcome:
        """Back to WAITING with a fresh retry budget, and `job_data` as its payload if given; the entry
        becomes RECOVERED, all in one transaction."""
        self._check_id(entry_id)
        stored_policy = self._check_policy(retry_policy, "retry_policy")
        if job_data is not None:
            job_data = check_document(job_data, "job_data", self.limits.max_payload_bytes)
        with self.database.transaction() as repo:
            outcome = self._retry_in(
                repo, entry_id, actor=actor, retry_policy=stored_policy, operation_id=None, job_data=job_data
            )
        self.jobs.notifier.notify()
        return outcome

    def _retry_in(
        self,
        repo: Repository,
        entry_id: str,
        *,
        actor: str,
        retry_policy: tuple[bool, dict[str, Any] | None],
        operation_id: str | None,
        job_data: dict[str, Any] | None = None,
    ) -> RetryOutcome:
        now = self.clock.now()
        entry = self._entry(repo, entry_id, for_update=True)
        self._require_pending(entry, "retried")
        job = repo.get_job(entry.job_id, for_update=True)
        if job is None:
            raise FailedPrecondition(
                f"job {entry.job_id!r} of dead-letter entry {entry_id!r} no longer exists", field="id"
            )
        states.check(Transition.REDRIVE, job.state, job_id=job.job_id)
        replace_policy, stored = retry_policy
        updated = repo.redrive_job(
            job,
            expected_states=states.sources(Transition.REDRIVE),
            retry_policy=stored,
            replace_policy=replace_policy,
            job_data=job_data,
            now=now,
        )
        if updated is None:
            raise Aborted(f"job {job.job_id!r} changed concurrently; retry the call", field="id")
        recovered = repo.resolve_dead_letter(
            entry,
            status=RecoveryStatus.RECOVERED,
            reason="",
            resolved_by=actor,
            recovery_attempts=entry.recovery_attempts + 1,
            now=now,
        )
        if recovered is None:
            raise Aborted(f"dead-letter entry {entry_id!r} changed concurrently; retry the call", field="id")
        parameters: dict[str, Any] = {"job_id": job.job_id, "queue_name": job.queue_name}
        if replace_policy:
            parameters["retry_policy"] = stored
        if job_data is not None:
            # The payload the job died with, and the one it runs with now.
            audit_payload(parameters, "old_job_data", job.job_data)
            audit_payload(parameters, "job_data", job_data)
        if operation_id:
            parameters["operation_id"] = operation_id
        audit.record(
            repo,
            actor=actor,
            action="RetryDeadLetterJob",
            target=audit.dead_letter_target(entry_id),
            parameters=parameters,
            now=now,
        )
        return RetryOutcome(recovered, self.jobs.views(repo, [updated])[updated.job_id])

    def mark_permanently_failed(self, entry_id: str, reason: str, *, actor: str) -> DeadLetterRecord:
        self._check_id(entry_id)
        if not reason or not reason.strip():
            raise InvalidArgument("reason must not be empty", field="reason")
        check_text(reason, "reason", self.limits.max_text_length)
        with self.database.transaction() as repo:
            now = self.clock.now()
            entry = self._entry(repo, entry_id, for_update=True)
            self._require_pending(entry, "marked permanently failed")
            updated = repo.resolve_dead_letter(
                entry,
                status=RecoveryStatus.PERMANENTLY_FAILED,
                reason=reason,
                resolved_by=actor,
                recovery_attempts=entry.recovery_attempts,
                now=now,
            )
            if updated is None:
                raise Aborted(f"dead-letter entry {entry_id!r} changed concurrently; retry the call", field="id")
            audit.record(
                repo,
                actor=actor,
                action="MarkPermanentlyFailed",
                target=audit.dead_letter_target(entry_id),
                parameters={"reason": reason, "job_id": entry.job_id, "queue_name": entry.queue_name},
                now=now,
            )
            return updated

    def update(self, entry_id: str, changes: Mapping[str, Any], *, actor: str) -> DeadLetterRecord:
        """Set the triage fields in `changes` (keys from UPDATABLE_FIELDS) whatever the entry's status."""
        self._check_id(entry_id, field="entry.id")
        unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
        if unknown:
            raise InvalidArgument(
                f"update_mask names {', '.join(unknown)}; only {', '.join(UPDATABLE_FIELDS)} can be updated",
                field="update_mask",
            )
        if not changes:
            raise InvalidArgument("update_mask names no field to update", field="update_mask")
        if "admin_notes" in changes:
            check_text(changes["admin_notes"], "entry.admin_notes", self.limits.max_text_length)
        if "assigned_to" in changes:
            check_text(changes["assigned_to"], "entry.assigned_to", MAX_ASSIGNEE_LENGTH)
        if "priority" in changes:
            check_range(changes["priority"], "entry.priority", -self.limits.max_priority, self.limits.max_priority)
        with self.database.transaction() as repo:
            now = self.clock.now()
            entry = self._entry(repo, entry_id, for_update=True, field="entry.id")
            updated = repo.update_dead_letter_triage(entry, TriageChanges(**changes), now=now)
            if updated is None:
                raise NotFound(f"dead-letter entry {entry_id!r} not found", field="entry.id")
            audit.record(
                repo,
                actor=actor,
                action="UpdateDeadLetterJob",
                target=audit.dead_letter_target(entry_id),
                parameters=dict(changes),
                now=now,
            )
            return updated

    # Failure patterns

    def patterns(
        self,
        *,
        queue_name: str = "",
        recovery_status: RecoveryStatus | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> paging.Page[FailurePattern]:
        check_text(queue_name, "queue_name", self.limits.max_name_length)
        status = recovery_status or RecoveryStatus.PENDING
        limit = paging.page_size(page_size)
        filters = {"queue_name": queue_name, "recovery_status": status.value}
        key = self.jobs.page_tokens.decode(page_token, filters, shape=(int, str))
        with self.database.snapshot() as repo:
            rows = repo.failure_patterns(
                queue_name=queue_name or None,
                recovery_status=status,
                now=self.clock.now(),
                after=tuple(key) if key else None,
                limit=limit + 1,
            )
            shown = rows[:limit]
            queues = repo.pattern_queues(
                [row.fingerprint for row in shown], queue_name=queue_name or None, recovery_status=status
            )
            patterns = []
            for row in shown:
                sample = repo.pattern_sample(row.fingerprint, queue_name=queue_name or None, recovery_status=status)
                patterns.append(
                    FailurePattern(
                        row=row,
                        normalised_message=normalise_message(sample.failure_reason) if sample else "",
                        queue_names=queues.get(row.fingerprint, [])[:MAX_PATTERN_QUEUES],
                        sample=sample,
                        queue_count=len(queues.get(row.fingerprint, [])),
                    )
                )
            total = repo.count_failure_patterns(queue_name=queue_name or None, recovery_status=status)
        token = self.jobs.page_tokens.next(rows, limit, lambda row: (row.count, row.fingerprint), filters)
        return paging.Page(patterns, token, total)

    # Bulk redrive

    def redrive(
        self, request: RedriveRequest, *, actor: str, is_active: Callable[[], bool] = lambda: True
    ) -> Iterator[RedriveProgress]:
        """Retry each selected PENDING entry exactly as `retry` does, each in its own transaction.

        Yields progress at least every REDRIVE_BATCH entries or PROGRESS_INTERVAL, then a final
        message with done = True. Entries that die after the redrive started are not included.
        """
        query, ids = self._check_redrive(request)
        stored_policy = self._check_policy(request.retry_policy, "retry_policy")
        sample_size = check_range(request.sample_size, "sample_size", 0, MAX_SAMPLE_SIZE) or DEFAULT_SAMPLE_SIZE
        started_at = self.clock.now()
        if query is not None:
            # Bound the selection to what had died when the redrive started.
            before = started_at + timedelta(microseconds=1)
            if query.dead_lettered_before is None or query.dead_lettered_before > before:
                query = replace(query, dead_lettered_before=before)
        with self.database.transaction() as repo:
            if query is not None:
                matched = repo.count_dead_letters(query)
                sample = repo.list_dead_letters(query, after=None, limit=sample_size) if request.dry_run else []
            else:
                found = repo.get_dead_letters(ids)
                pending = [found[i] for i in ids if i in found and found[i].recovery_status == RecoveryStatus.PENDING]
                matched = len(ids)
                pending.sort(key=lambda e: (-e.priority, -e.dead_lettered_at.timestamp(), e.id))
                sample = pending[:sample_size]
        if request.max_jobs:
            matched = min(matched, request.max_jobs)
        if request.dry_run:
            yield RedriveProgress(matched_count=matched, done=True, sample=sample)
            return

        operation_id = str(uuid.uuid4())
        with self.database.transaction() as repo:
            audit.record(
                repo,
                actor=actor,
                action="RetryDeadLetterJobs",
                target=f"dead_letter_queue/{query.queue_name or '*'}" if query else "dead_letter_queue/*",
                parameters={
                    "operation_id": operation_id,
                    "filter": _json_filter(query) if query else None,
                    "ids": list(ids) if query is None else None,
                    "retry_policy": stored_policy[1] if stored_policy[0] else None,
                    "rate_limit": request.rate_limit,
                    "max_jobs": request.max_jobs,
                    "matched_count": matched,
                },
                now=started_at,
            )
        yield RedriveProgress(matched_count=matched)

        progress = RedriveProgress(matched_count=matched)
        pacer = Pacer(request.rate_limit, self.clock, self.sleep)
        last_report = self.clock.now()
        processed = 0
        for entry_id in self._redrive_ids(query, ids, matched):
            if not pacer.wait(is_active):
                break
            try:
                with self.database.transaction() as repo:
                    self._retry_in(repo, entry_id, actor=actor, retry_policy=stored_policy, operation_id=operation_id)
                progress.retried_count += 1
                progress.retried_ids.append(entry_id)
            except (FailedPrecondition, NotFound, Aborted) as error:
                progress.skipped_count += 1
                progress.skipped.append((entry_id, error.message))
            processed += 1
            self.jobs.notifier.notify()
            now = self.clock.now()
            if processed % REDRIVE_BATCH == 0 or now - last_report >= PROGRESS_INTERVAL:
                yield self._report(progress)
                last_report = now
        progress.done = True
        yield self._report(progress)

    def _redrive_ids(self, query: DeadLetterFilter | None, ids: tuple[str, ...], limit: int) -> Iterator[str]:
        if query is None:
            yield from ids[:limit]
            return
        after_id = None
        remaining = limit
        while remaining > 0:
            with self.database.transaction() as repo:
                batch = repo.dead_letter_ids(query, after_id=after_id, limit=min(REDRIVE_BATCH, remaining))
            if not batch:
                return
            yield from batch
            remaining -= len(batch)
            after_id = batch[-1]

    @staticmethod
    def _report(progress: RedriveProgress) -> RedriveProgress:
        """A snapshot to send, then start collecting the next message's ids afresh."""
        report = replace(progress, retried_ids=list(progress.retried_ids), skipped=list(progress.skipped))
        progress.retried_ids.clear()
        progress.skipped.clear()
        return report

    def _check_redrive(self, request: RedriveRequest) -> tuple[DeadLetterFilter | None, tuple[str, ...]]:
        check_rate_limit(request.rate_limit)
        check_range(request.max_jobs, "max_jobs", 0, 2**31 - 1)
        if request.filter is not None and request.ids:
            raise InvalidArgument("give either filter or ids, not both", field="ids")
        if request.filter is None:
            if not request.ids:
                raise InvalidArgument("a redrive needs a filter or ids", field="filter")
            if len(request.ids) > MAX_REDRIVE_IDS:
                raise InvalidArgument(f"ids has more than {MAX_REDRIVE_IDS} entries", field="ids.ids")
            for entry_id in request.ids:
                self._check_id(entry_id, field="ids.ids")
            return None, tuple(dict.fromkeys(request.ids))
        query = check_filter(request.filter)
        if query.recovery_status not in (None, RecoveryStatus.PENDING):
            raise InvalidArgument(
                "only PENDING entries can be redriven; leave filter.recovery_status unset or PENDING",
                field="filter.recovery_status",
            )
        return replace(query, recovery_status=RecoveryStatus.PENDING), ()

    # Helpers

    def _check_policy(self, override: PolicyOverride | None, field: str) -> tuple[bool, dict[str, Any] | None]:
        """(replace the job's policy?, the policy to store)."""
        if override is None:
            return False, None
        validate_override(override, field)
        return True, policy_to_json(override)

    def _check_id(self, entry_id: str, field: str = "id") -> None:
        if not entry_id or not entry_id.strip():
            raise InvalidArgument(f"{field} must not be empty", field=field)
        check_text(entry_id, field, 36)

    @staticmethod
    def _entry(repo: Repository, entry_id: str, *, for_update: bool = False, field: str = "id") -> DeadLetterRecord:
        entry = repo.get_dead_letter(entry_id, for_update=for_update)
        if entry is None:
            raise NotFound(f"dead-letter entry {entry_id!r} not found", field=field)
        return entry

    @staticmethod
    def _require_pending(entry: DeadLetterRecord, action: str) -> None:
        if entry.recovery_status != RecoveryStatus.PENDING:
            raise FailedPrecondition(
                f"dead-letter entry {entry.id!r} is {entry.recovery_status.value.upper()}; "
                f"only PENDING entries can be {action}",
                field="id",
                reason="DEAD_LETTER_NOT_PENDING",
            )


def _json_filter(query: DeadLetterFilter) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else getattr(value, "value", value)
        for name, value in asdict(query).items()
        if value
    }
