"""Circuit breakers at work: the hooks the lease, completion and failure paths call, inside their
own transactions, and what a transition sets off (audit row, alert email, metrics, webhook).

The rules are queue_service/core/breaker.py; the statements queue_service/store/breakers.py.
Queues without a breaker, or with it off, cost nothing more on LeaseJobs,
TrackCompletion and TrackFailure: they learn it from the statements they run anyway.
"""

from __future__ import annotations

import functools
import http.client
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from queue_service.alerts.message import Alert
from queue_service.alerts.webhook import PostJson, post_json
from queue_service.core import audit
from queue_service.core.breaker import (
    AUDIT_ACTIONS,
    AUDIT_ACTOR,
    BreakerChange,
    BreakerTransition,
    WindowCounts,
    is_closed,
    is_probe,
    probe_due,
    ramp_times,
    should_trip,
    target,
    window_start,
)
from queue_service.core.errors import Aborted
from queue_service.domain import BreakerRecord, BreakerState, JobRecord, JobState
from queue_service.store.alert_policies import alert_policies_of
from queue_service.store.breakers import breakers_of
from queue_service.store.repository import Repository

logger = logging.getLogger(__name__)

ALERT_KIND = "circuit_breaker"
PRUNE_INTERVAL = timedelta(seconds=1)

Listener = Callable[[BreakerChange], None]


def describe(change: BreakerChange) -> str:
    what = {
        BreakerTransition.TRIP: "opened: its retries are held",
        BreakerTransition.PROBE: f"half-open: probe job {change.probe_job_id!r} leased",
        BreakerTransition.CLOSE: "closed: the probe succeeded, held jobs are released",
        BreakerTransition.REOPEN: "re-opened: the probe failed",
        BreakerTransition.RESET: "turned off while not closed",
    }[change.transition]
    counted = (
        f" ({change.counts.failures} of {change.counts.runs} runs failed in the window)"
        if change.transition == BreakerTransition.TRIP
        else ""
    )
    return f"circuit breaker of queue {change.queue_name!r} {what}{counted}"


def change_alert(change: BreakerChange) -> Alert:
    return Alert(
        kind=ALERT_KIND,
        queue_name=change.queue_name,
        subject=f"[queue-service] {change.queue_name}: circuit breaker {change.to_state.value.replace('_', '-')}",
        body=f"The {describe(change)}.\n\nAt {change.at.isoformat()}, from {change.from_state.value}.\n",
    )


class CircuitBreakers:
    """The hooks; `listeners` hear each transition once its transaction commits (metrics, webhook),
    `email_outbox` (an alerts.outbox.EmailOutbox) queues its email inside that transaction."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.email_outbox = None
        # Called with queue names whose held jobs were released, once committed (wakes long-polls).
        self.on_release: Callable[[list[str]], None] = lambda names: None
        # When this process last deleted a queue's counts that fell out of its window.
        self._pruned_at: dict[str, datetime] = {}

    # The lease path

    def gate(
        self, repo: Repository, names: Sequence[str], now: datetime, enabled: dict[str, BreakerRecord]
    ) -> tuple[list[str], list[BreakerRecord]]:
        """Of the queues `names`: those that lease as usual, and the breakers that may lease one probe.
        An open breaker in its cool-down, or half-open with its probe running, leases nothing.
        `enabled` holds the breakers that are on, by queue, as the lease read them."""
        records = enabled
        usual: list[str] = []
        probing: list[BreakerRecord] = []
        for name in names:
            record = records.get(name)
            if is_closed(record):
                usual.append(name)
            elif probe_due(record, now) or (record.state == BreakerState.HALF_OPEN and self._probe_gone(repo, record)):
                probing.append(record)
        return usual, probing

    @staticmethod
    def _probe_gone(repo: Repository, record: BreakerRecord) -> bool:
        """True when the half-open breaker's probe ended without a verdict: cut from its lease
        reply, or moved away by an admin. Its outcome is recorded with the run otherwise."""
        job = repo.get_job(record.probe_job_id) if record.probe_job_id else None
        return job is None or job.state != JobState.ACTIVE or job.attempt_number != record.probe_attempt

    def take_probes(
        self, repo: Repository, probing: Sequence[BreakerRecord], *, room: int, now: datetime
    ) -> list[JobRecord]:
        """One ready job of each probing queue, while `room` lasts, each claimed as its breaker's
        probe by compare-and-set: of replicas racing for a probe, one wins; the others lease nothing."""
        taken: list[JobRecord] = []
        for record in probing:
            if len(taken) >= room:
                break
            ready = repo.ready_jobs_for_lease([record.queue_name], limit=1, now=now)
            if not ready:
                continue
            job = ready[0]
            changed = self._transition(
                repo,
                record,
                BreakerTransition.PROBE,
                now,
                probe_job_id=job.job_id,
                probe_attempt=job.attempt_number + 1,
            )
            if changed is not None:
                taken.append(job)
        return taken

    # The completion path

    def on_completions(self, repo: Repository, completed: Iterable[tuple[str, str, int]], now: datetime) -> None:
        """Counts the successful runs, each (queue_name, job_id, attempt_number); a probe's success
        closes its breaker and spreads the held jobs over the ramp."""
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for queue_name, job_id, attempt_number in completed:
            by_queue.setdefault(queue_name, []).append((job_id, attempt_number))
        if not by_queue:
            return
        store = breakers_of(repo)
        records = store.get_enabled(by_queue)
        for name in sorted(records):
            record, runs = records[name], by_queue[name]
            if record.state == BreakerState.CLOSED:
                store.add_outcomes(name, runs=len(runs), failures=0, now=now)
                self._prune(repo, record, now)
            elif any(is_probe(record, job_id, attempt) for job_id, attempt in runs):
                if self._transition(repo, record, BreakerTransition.CLOSE, now) is not None:
                    self._release(repo, record, now)

    def _release(self, repo: Repository, record: BreakerRecord, now: datetime) -> None:
        store = breakers_of(repo)
        held = store.held_jobs(record.queue_name, due_before=now + record.policy.ramp)
        times = ramp_times([run_at for _, run_at in held], now, record.policy.ramp)
        store.reschedule([(row_id, new) for (row_id, old), new in zip(held, times, strict=True) if new != old])
        repo.after_commit(functools.partial(self.on_release, [record.queue_name]))

    # The failure path

    def on_failures(self, repo: Repository, failed: Sequence[JobRecord], now: datetime) -> set[str]:
        """Counts the failed runs and trips the breakers they push over their threshold; a probe's
        failure re-opens its breaker. Returns the queues whose breaker is open or half-open now:
        their failed runs are to use up no attempt."""
        by_queue: dict[str, list[JobRecord]] = {}
        for job in failed:
            by_queue.setdefault(job.queue_name, []).append(job)
        if not by_queue:
            return set()
        store = breakers_of(repo)
        records = store.get_enabled(by_queue)
        held: set[str] = set()
        for name in sorted(records):
            record, jobs = records[name], by_queue[name]
            if record.state == BreakerState.CLOSED:
                store.add_outcomes(name, runs=len(jobs), failures=len(jobs), now=now)
                since = window_start(record, now)
                self._prune(repo, record, now)
                counts = WindowCounts(*store.window_counts(name, since=since, now=now))
                if not should_trip(record.policy, counts):
                    continue
                if self._transition(repo, record, BreakerTransition.TRIP, now, counts=counts) is None:
                    # Another replica changed it first; it holds if that opened it.
                    if is_closed(store.get(name)):
                        continue
                held.add(name)
            elif any(is_probe(record, job.job_id, job.attempt_number) for job in jobs):
                self._transition(repo, record, BreakerTransition.REOPEN, now)
                held.add(name)
            else:
                held.add(name)
        return held

    def _prune(self, repo: Repository, record: BreakerRecord, now: datetime) -> None:
        """Deletes the queue's counts older than its window, at most once a second per process."""
        last = self._pruned_at.get(record.queue_name)
        if last is not None and last <= now < last + PRUNE_INTERVAL:
            return
        self._pruned_at[record.queue_name] = now
        breakers_of(repo).prune_outcomes(record.queue_name, before=now - record.policy.window)

    @staticmethod
    def refund(repo: Repository, jobs: Sequence[JobRecord]) -> None:
        """The failed runs of `jobs`, retried while their breaker holds, use up no attempt."""
        if breakers_of(repo).refund_runs(jobs) != len(jobs):
            raise Aborted(
                "jobs changed concurrently while their failures were recorded; retry the call", field="job_id"
            )

    # Admin

    def reset(self, repo: Repository, record: BreakerRecord, now: datetime, *, actor: str) -> None:
        """Closes a breaker an admin turned off; its held jobs keep their run times."""
        if record.state != BreakerState.CLOSED:
            self._transition(repo, record, BreakerTransition.RESET, now, actor=actor)

    # Transitions

    def _transition(
        self,
        repo: Repository,
        record: BreakerRecord,
        transition: BreakerTransition,
        now: datetime,
        *,
        counts: WindowCounts = WindowCounts(),
        probe_job_id: str = "",
        probe_attempt: int = 0,
        actor: str = AUDIT_ACTOR,
    ) -> BreakerRecord | None:
        """Compare-and-set the breaker through `transition`, and on success audit it, queue its alert
        email and, once committed, tell the listeners. None when another transaction was first."""
        to_state = target(transition, record.state)
        changed = breakers_of(repo).change_state(
            record, to_state, now=now, probe_job_id=probe_job_id, probe_attempt=probe_attempt
        )
        if changed is None:
            return None
        change = BreakerChange(record.queue_name, transition, record.state, to_state, now, counts, probe_job_id)
        audit.record(
            repo,
            actor=actor,
            action=AUDIT_ACTIONS[transition],
            target=audit.queue_target(record.queue_name),
            parameters={
                "from_state": record.state.value,
                "to_state": to_state.value,
                "window_runs": counts.runs,
                "window_failures": counts.failures,
                "probe_job_id": probe_job_id,
            },
            now=now,
        )
        if self.email_outbox is not None:
            policy = alert_policies_of(repo).get(record.queue_name)
            recipients = policy.email_recipients if policy else ()
            self.email_outbox.add(repo, change_alert(change), now=now, queue_recipients=recipients)
        repo.after_commit(functools.partial(self._announce, change))
        return changed

    def _announce(self, change: BreakerChange) -> None:
        logger.warning("%s", describe(change))
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a broken listener must not fail the committed call
                logger.exception("circuit breaker listener failed")


class BreakerWebhook:
    """A listener that POSTs each transition to the alert webhook, from a thread of its own so
    that a slow webhook never delays the call that made the transition."""

    def __init__(self, url: str, *, timeout: float = 5.0, node_id: str = "", post: PostJson = post_json) -> None:
        self.url = url
        self.timeout = timeout
        self.node_id = node_id
        self.post = post

    def body(self, change: BreakerChange) -> dict:
        return {
            "event": ALERT_KIND,
            "queue_name": change.queue_name,
            "transition": change.transition.value,
            "from_state": change.from_state.value,
            "to_state": change.to_state.value,
            "at": change.at.isoformat(),
            "window_runs": change.counts.runs,
            "window_failures": change.counts.failures,
            "probe_job_id": change.probe_job_id,
            "node_id": self.node_id,
            "text": f"queue-service: {describe(change)}",
        }

    def __call__(self, change: BreakerChange) -> threading.Thread:
        thread = threading.Thread(target=self.send, args=(change,), name="breaker-webhook", daemon=True)
        thread.start()
        return thread

    def send(self, change: BreakerChange) -> bool:
        try:
            self.post(self.url, self.body(change), self.timeout)
        except (OSError, ValueError, http.client.HTTPException) as error:
            logger.error("circuit breaker webhook for %r failed: %s", change.queue_name, error)
            return False
        return True
