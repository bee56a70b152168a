"""Group commit: writes that arrive while a transaction is in flight share the next one.

A commit costs a disk flush (SQLite with synchronous=FULL, PostgreSQL's WAL), whatever it holds.
Under load, many callers each waiting for their own commit spend most of their time flushing;
here they take turns as a group instead (the leader/follower "combining" pattern):

* A caller that finds a lane free (no transaction in flight, with one lane) leads at once: a
  lone caller waits for nothing.
* Callers that arrive while every lane has a transaction in flight queue up. When one commits,
  its leader hands the lane to the first of them, who runs its own unit and those queued behind
  it (up to `max_group_size`, in order of arrival) in one transaction and one commit.
* A group first runs with no savepoint between its units, and commits if none of them raised.
  If one did, that transaction rolls back, nothing of it written, and the group runs again with
  each unit in its own savepoint, so that an error undoes that unit's writes alone; its caller
  gets that error, its neighbours their results. A unit alone in its transaction needs no
  savepoint: its error rolls the transaction back, as it did before there were groups.
* A caller returns only after the transaction holding its writes has committed. When the group
  cannot commit (the database went away, the commit itself failed), nothing of it is written,
  and every caller of the group gets that error, as a caller of its own transaction would; none
  is retried here, since the callers retry as they would any transaction that failed. So it is
  too when the database ends the transaction itself after a unit's error (SQLite may).

Sharing a transaction makes its units' row locks one transaction's, held until the group
commits, and taken in the order the units happen to run, which differs between groups of other
lanes and processes. Two units that each lock one row cannot deadlock alone, but grouped they
can: PostgreSQL then cancels a statement of one group after its deadlock_timeout, and the unit
that ran it is undone (its savepoint) and runs again in a transaction of its own, as it would
with group commit off; its caller sees no error. A unit that locks several shared rows in an
order of its own (a lease of queues with lease limits) would make such cycles likely: it asks
`shares_transaction()` and raises `RunAlone` before taking its locks, and then runs once more
in its own transaction, once its group has committed.

Units run on the leader's thread. They must not themselves go through the committer, and what
they do once committed belongs in after-commit callbacks, which run on their caller's thread
only when the unit's savepoint survived and its transaction committed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from queue_service.store.database import Database
from queue_service.store.errors import LockConflict, TransactionLost
from queue_service.store.repository import Repository

T = TypeVar("T")

# Enough to amortise a commit over many callers, few enough that a group's locks are held briefly;
# and PostgreSQL keeps up to 64 subtransactions (savepoints) per transaction in shared memory,
# beyond which every snapshot taken anywhere gets slower.
DEFAULT_MAX_GROUP_SIZE = 64

# Set on the leader's thread while a unit runs in a transaction shared with other units.
_running = threading.local()


def shares_transaction() -> bool:
    """Whether the unit of work running on this thread shares its transaction with other callers'."""
    return getattr(_running, "shared", False)


class RunAlone(Exception):  # noqa: N818 - a request to the committer, not an error
    """Raised by a unit that shares its transaction, before it takes locks it must not hold there:
    the committer undoes it and runs it again in a transaction of its own."""


class _UnitRaised(Exception):  # noqa: N818 - the committer's own signal, never seen outside
    """A unit raised in a group run without savepoints: the group runs again with them."""


class _Request(Generic[T]):
    """One caller's unit of work, and what became of it."""

    def __init__(self, work: Callable[[Repository], T]) -> None:
        self.work = work
        # Released when the request is done, or when its caller is to lead the next group. A held
        # lock rather than an Event: the leader wakes every caller of its group, and an Event's
        # set and wait each take a Condition's lock and allocate a waiter lock.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._woken = False
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        # The savepoint's repository, whose after-commit callbacks the caller runs.
        self.repo: Repository | None = None
        # Undone in its group, to run again in a transaction of its own.
        self.alone = False

    def wake(self) -> None:
        """Wakes the caller; a request woken to lead is woken again, harmlessly, with its group.
        Only its leader, or its predecessor as leader, wakes a request, one after the other."""
        if not self._woken:
            self._woken = True
            self._wake.release()

    def wait(self) -> None:
        self._wake.acquire()

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        if self.repo is not None:
            self.repo.run_after_commit()
        return self.result  # type: ignore[return-value]


@dataclass(frozen=True)
class GroupCommitStats:
    """How many transactions committed (or failed to) and how many units of work they held."""

    transactions: int
    units: int
    largest_group: int
    # Units that ran again in a transaction of their own (RunAlone, or a deadlock between groups).
    alone: int = 0


def _run_shared(request: _Request, unit_repo: Repository) -> None:
    """`request`'s unit over `unit_repo`, a part of a transaction other units share; the repository
    is kept for the after-commit callbacks its caller runs."""
    _running.shared = True
    try:
        request.result = request.work(unit_repo)
    finally:
        _running.shared = False
    request.repo = unit_repo


class GroupCommitter:
    """Runs units of work, functions of a Repository, in shared transactions, with up to `lanes`
    transactions in flight at once (one where the database writes one transaction at a time)."""

    def __init__(self, database: Database, *, max_group_size: int = DEFAULT_MAX_GROUP_SIZE, lanes: int = 1) -> None:
        if max_group_size < 1:
            raise ValueError("max_group_size must be at least 1")
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        self.database = database
        self.max_group_size = max_group_size
        self.lanes = lanes
        self._lock = threading.Lock()
        # Callers waiting for a transaction; a leader's own request is never here.
        self._pending: deque[_Request] = deque()
        self._leaders = 0
        self._transactions = 0
        self._units = 0
        self._largest_group = 0
        self._alone = 0

    def stats(self) -> GroupCommitStats:
        with self._lock:
            return GroupCommitStats(self._transactions, self._units, self._largest_group, self._alone)

    def queued(self) -> int:
        """Units of work waiting for a transaction (not those in one in flight)."""
        with self._lock:
            return len(self._pending)

    def run(self, work: Callable[[Repository], T]) -> T:
        """`work(repo)` inside a transaction, returning once that transaction has committed.
        Raises what `work` raised (its writes undone), or what made the transaction fail."""
        request: _Request[T] = _Request(work)
        with self._lock:
            leads = self._leaders < self.lanes
            if leads:
                self._leaders += 1
            else:
                self._pending.append(request)
        if not leads:
            request.wait()
        if not request.done:
            # This caller leads: a lane was free, or a leader that finished handed it this one.
            self._lead(request)
        if request.alone:
            return self._run_alone(work)
        return request.outcome()

    def _run_alone(self, work: Callable[[Repository], T]) -> T:
        """`work` in a transaction of its own, outside the lanes, on its caller's thread."""
        with self._lock:
            self._alone += 1
        with self.database.transaction() as repo:
            return work(repo)

    def _lead(self, first: _Request) -> None:
        with self._lock:
            group = [first]
            while self._pending and len(group) < self.max_group_size:
                group.append(self._pending.popleft())
        try:
            self._commit(group)
        finally:
            with self._lock:
                self._transactions += 1
                self._units += len(group)
                self._largest_group = max(self._largest_group, len(group))
                # The lane passes to the first caller waiting, or is free again.
                successor = self._pending.popleft() if self._pending else None
                if successor is None:
                    self._leaders -= 1
            for request in group:
                request.done = True
                request.wake()
            if successor is not None:
                successor.wake()

    def _commit_without_savepoints(self, group: list[_Request]) -> bool:
        """The group's units one after the other in one transaction, with no savepoint between them
        (on SQLite's one writer each savepoint is a statement more, paid while every other writer
        waits): True once it committed. When a unit raises (its own error, RunAlone, a lock
        conflict), the transaction rolls back with nothing written, and False says to run the group
        again with a savepoint per unit, where that unit alone is undone."""
        try:
            with self.database.transaction() as repo:
                for request in group:
                    try:
                        _run_shared(request, Repository(repo.connection))
                    except Exception as error:
                        raise _UnitRaised from error
        except _UnitRaised:
            for request in group:
                request.result, request.repo = None, None
            return False
        return True

    def _commit(self, group: list[_Request]) -> None:
        try:
            if len(group) > 1 and self._commit_without_savepoints(group):
                return
            with self.database.transaction() as repo:
                if len(group) == 1:
                    # Alone: the transaction is the unit's own, and its error rolls it all back.
                    [request] = group
                    request.result = request.work(repo)
                    return
                for index, request in enumerate(group):
                    try:
                        with self.database.savepoint(repo, f"unit_{index}") as unit_repo:
                            _run_shared(request, unit_repo)
                    except TransactionLost:
                        raise  # the whole group's, not the unit's
                    except (RunAlone, LockConflict):
                        request.alone = True  # undone here; its caller runs it again alone
                    except Exception as error:  # its caller gets it, not the group
                        request.error = error
        except BaseException as error:
            # Nothing of the group was written: each caller gets the error, not a result; those
            # to run alone wrote nothing here and still do.
            for request in group:
                if not request.alone:
                    request.error = error if isinstance(error, TransactionLost) else request.error or error
                request.repo = None
            if not isinstance(error, Exception):
                raise
