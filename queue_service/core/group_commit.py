"""Group commit: writes that arrive while a transaction is in flight share the next one.

A commit costs a disk flush (SQLite with synchronous=FULL, PostgreSQL's WAL), whatever it holds.
Under load, many callers each waiting for their own commit spend most of their time flushing;
here they take turns as a group instead (the leader/follower "combining" pattern):

* A caller that finds no transaction in flight leads at once: a lone caller waits for nothing.
* Callers that arrive while one is in flight queue up. When it commits, the leader hands the
  lead to the first of them, who runs every queued unit of work (up to `max_group_size`, in
  order of arrival) in one transaction and one commit.
* Each unit runs in its own savepoint, so an error undoes that unit's writes alone; its caller
  gets that error, its neighbours their results. A unit alone in its transaction needs no
  savepoint: its error rolls the transaction back, as it did before there were groups.
* A caller returns only after the transaction holding its writes has committed. When the group
  cannot commit (the database went away, the commit itself failed), nothing of it is written,
  and every caller of the group gets that error, as a caller of its own transaction would; none
  is retried here, since the callers retry as they would any transaction that failed. So it is
  too when the database ends the transaction itself after a unit's error (SQLite may).

Units run on the leader's thread. They must not themselves go through the committer, and what
they do once committed belongs in after-commit callbacks, which run on their caller's thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from queue_service.store.database import Database
from queue_service.store.errors import TransactionLost
from queue_service.store.repository import Repository

T = TypeVar("T")

# Enough to amortise a commit over many callers, few enough that a group's locks are held briefly.
DEFAULT_MAX_GROUP_SIZE = 64


class _Request(Generic[T]):
    """One caller's unit of work, and what became of it."""

    def __init__(self, work: Callable[[Repository], T]) -> None:
        self.work = work
        # Set when the request is done, or when its caller is to lead the next group.
        self.woken = threading.Event()
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        # The savepoint's repository, whose after-commit callbacks the caller runs.
        self.repo: Repository | None = None

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


class GroupCommitter:
    """Runs units of work, functions of a Repository, in shared transactions."""

    def __init__(self, database: Database, *, max_group_size: int = DEFAULT_MAX_GROUP_SIZE) -> None:
        if max_group_size < 1:
            raise ValueError("max_group_size must be at least 1")
        self.database = database
        self.max_group_size = max_group_size
        self._lock = threading.Lock()
        self._pending: deque[_Request] = deque()
        self._leading = False
        self._transactions = 0
        self._units = 0
        self._largest_group = 0

    def stats(self) -> GroupCommitStats:
        with self._lock:
            return GroupCommitStats(self._transactions, self._units, self._largest_group)

    def queued(self) -> int:
        """Units of work waiting for a transaction (not those in the one in flight)."""
        with self._lock:
            return len(self._pending)

    def run(self, work: Callable[[Repository], T]) -> T:
        """`work(repo)` inside a transaction, returning once that transaction has committed.
        Raises what `work` raised (its writes undone), or what made the transaction fail."""
        request: _Request[T] = _Request(work)
        with self._lock:
            self._pending.append(request)
            follows = self._leading
            self._leading = True
        if follows:
            request.woken.wait()
            if request.done:
                return request.outcome()
            # Not done yet: the previous leader handed this caller the lead, its request first in line.
        self._lead()
        return request.outcome()

    def _lead(self) -> None:
        with self._lock:
            group = [self._pending.popleft() for _ in range(min(self.max_group_size, len(self._pending)))]
        try:
            self._commit(group)
        finally:
            with self._lock:
                self._transactions += 1
                self._units += len(group)
                self._largest_group = max(self._largest_group, len(group))
                successor = self._pending[0] if self._pending else None
                self._leading = successor is not None
            for request in group:
                request.done = True
                request.woken.set()
            if successor is not None:
                successor.woken.set()

    def _commit(self, group: list[_Request]) -> None:
        try:
            with self.database.transaction() as repo:
                if len(group) == 1:
                    # Alone: the transaction is the unit's own, and its error rolls it all back.
                    [request] = group
                    request.result = request.work(repo)
                    return
                for request in group:
                    try:
                        with self.database.savepoint(repo) as unit_repo:
                            request.result = request.work(unit_repo)
                        request.repo = unit_repo
                    except TransactionLost:
                        raise  # the whole group's, not the unit's
                    except Exception as error:  # its caller gets it, not the group
                        request.error = error
        except BaseException as error:
            # Nothing of the group was written: each caller gets the error, not a result.
            for request in group:
                request.error = error if isinstance(error, TransactionLost) else request.error or error
                request.repo = None
            if not isinstance(error, Exception):
                raise
