"""What the core reports about jobs and sweeps, to whoever observes it (metrics), without depending on it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from queue_service.core.states import Transition

if TYPE_CHECKING:
    from queue_service.core.retry import RetryDecision
    from queue_service.domain import JobRecord


class JobEvent(StrEnum):
    ENQUEUED = "enqueued"
    STARTED = "started"
    COMPLETED = "completed"
    # A run failed, whatever the decision; RETRIED or DEAD_LETTERED says which.
    FAILED = "failed"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


# The events each state change emits once its transaction commits.
TRANSITION_EVENTS: dict[Transition, tuple[JobEvent, ...]] = {
    Transition.LEASE: (JobEvent.STARTED,),
    Transition.START: (JobEvent.STARTED,),
    Transition.COMPLETE: (JobEvent.COMPLETED,),
    Transition.RETRY: (JobEvent.FAILED, JobEvent.RETRIED),
    Transition.DEAD_LETTER: (JobEvent.FAILED, JobEvent.DEAD_LETTERED),
    Transition.MOVE_TO_DEAD_LETTER: (JobEvent.DEAD_LETTERED,),
    Transition.CANCEL: (JobEvent.CANCELLED,),
    Transition.END_CANCELLED_RUN: (JobEvent.CANCELLED,),
}


class ServiceEvents(Protocol):
    """Receives committed facts only; implementations must be cheap and must never raise."""

    def job_event(self, event: JobEvent, queue_name: str, count: int = 1) -> None: ...

    def job_processed(self, queue_name: str, seconds: float) -> None:
        """A completed run took `seconds`, as its worker reported."""

    def lease_expiry_decided(self, job: JobRecord, decision: RetryDecision, dead_letter_id: str) -> None:
        """The sweep counted a run whose lease expired as failed, and decided retry or dead letter;
        `job` is the job as it was when its run was taken for failed."""

    def sweep_finished(self, *, duration_seconds: float, counts: Mapping[str, int], succeeded: bool) -> None:
        """One sweep ended; `counts` is rows handled per task (e.g. {"due_retries": 3})."""


class NoEvents:
    """The default observer: ignores everything."""

    def job_event(self, event: JobEvent, queue_name: str, count: int = 1) -> None:
        pass

    def job_processed(self, queue_name: str, seconds: float) -> None:
        pass

    def lease_expiry_decided(self, job: JobRecord, decision: RetryDecision, dead_letter_id: str) -> None:
        pass

    def sweep_finished(self, *, duration_seconds: float, counts: Mapping[str, int], succeeded: bool) -> None:
        pass
