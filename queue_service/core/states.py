"""Checks a job state change against the transition table (TRANSITIONS, in queue_service.domain)."""

from __future__ import annotations

from queue_service.core.errors import FailedPrecondition
from queue_service.domain import TRANSITIONS, JobState, Transition, sources, target

__all__ = ["TRANSITIONS", "Transition", "check", "sources", "target"]


def check(transition: Transition, current: JobState, *, job_id: str) -> JobState:
    """Return the target state, or raise FailedPrecondition naming the job's current state."""
    allowed, to_state = TRANSITIONS[transition]
    if current not in allowed:
        expected = ", ".join(sorted(state.value.upper() for state in allowed))
        raise FailedPrecondition(
            f"job {job_id!r} is {current.value.upper()}; {transition.value} needs {expected}",
            field="job_id",
            reason="INVALID_JOB_STATE",
        )
    return to_state
