"""What a job handler sees of a cancellation: `cancel_requested()` and `JobCancelled`.

When an operator cancels a running job, the service tells its worker at the run's next heartbeat.
The Worker then flags the run; a handler that runs long checks the flag where it can stop cleanly:

    from jobqueue import JobCancelled, cancel_requested

    def handle(job):
        for chunk in chunks(job.job_data):
            if cancel_requested():
                raise JobCancelled()
            process(chunk)

The async Worker also cancels the handler's task, so the handler receives asyncio.CancelledError
at its next await. Either way the worker reports the run, and the service records the job as
CANCELLED, never retried. A handler that ignores the flag runs to its end; its report, whatever
it says, ends the job CANCELLED too.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The cancel flag of the run whose handler is executing in this thread or task; None outside one.
_current: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("jobqueue_cancel", default=None)


class JobCancelled(Exception):
    """Raised by a handler to stop a run that a cancellation asked to stop."""

    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)


def cancel_requested() -> bool:
    """Inside a job handler run by a Worker: whether a cancellation asked this run to stop."""
    flag = _current.get()
    return flag is not None and flag.is_set()


def raise_if_cancel_requested() -> None:
    """Inside a job handler run by a Worker: raise JobCancelled if a cancellation asked this run to stop."""
    if cancel_requested():
        raise JobCancelled()


@contextmanager
def run_flag(flag: threading.Event) -> Iterator[threading.Event]:
    """Make `flag` the cancel flag that `cancel_requested()` reads while the handler runs."""
    token = _current.set(flag)
    try:
        yield flag
    finally:
        _current.reset(token)
