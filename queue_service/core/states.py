"""The job state machine: every state change the service makes is a row of TRANSITIONS."""

from __future__ import annotations

from enum import StrEnum

from queue_service.core.errors import FailedPrecondition
from queue_service.store.records import JobState

W, A, C, F, D = JobState.WAITING, JobState.ACTIVE, JobState.COMPLETED, JobState.FAILED, JobState.DEAD_LETTER


class Transition(StrEnum):
    LEASE = "lease"
    START = "start"
    HEARTBEAT = "heartbeat"
    COMPLETE = "complete"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    MOVE_TO_DEAD_LETTER = "move_to_dead_letter"
    MAKE_DUE = "make_due"
    REDRIVE = "redrive"


# transition -> (states it may start from, state it ends in)
TRANSITIONS: dict[Transition, tuple[frozenset[JobState], JobState]] = {
    Transition.LEASE: (frozenset({W, F}), A),
    # An external queue owns the timing: it may start a FAILED job early, or re-deliver an ACTIVE one.
    Transition.START: (frozenset({W, F, A}), A),
    Transition.HEARTBEAT: (frozenset({A}), A),
    Transition.COMPLETE: (frozenset({A}), C),
    Transition.RETRY: (frozenset({A}), F),
    Transition.DEAD_LETTER: (frozenset({A}), D),
    Transition.MOVE_TO_DEAD_LETTER: (frozenset({W, A, F}), D),
    Transition.MAKE_DUE: (frozenset({F}), W),
    Transition.REDRIVE: (frozenset({D}), W),
}


def sources(transition: Transition) -> frozenset[JobState]:
    return TRANSITIONS[transition][0]


def target(transition: Transition) -> JobState:
    return TRANSITIONS[transition][1]


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
