"""GroupCommitter with real threads over real SQLite and PostgreSQL databases: who leads, who waits,
what each caller gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import event, exc, text

from queue_service.core.group_commit import GroupCommitter, RunAlone, shares_transaction
from queue_service.store.database import Database
from queue_service.store.errors import LockConflict, StoreUnavailable
from queue_service.store.repository import Repository

TIMEOUT = 30


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    else:
        database = Database(request.getfixturevalue("postgres_session_url"))
    with database.transaction() as repo:
        repo.connection.execute(text("DROP TABLE IF EXISTS children"))
        repo.connection.execute(text("DROP TABLE IF EXISTS items"))
        repo.connection.execute(text("CREATE TABLE items (name TEXT PRIMARY KEY)"))
        repo.connection.execute(
            text(
                "CREATE TABLE children (name TEXT PRIMARY KEY, parent TEXT "
                "REFERENCES items (name) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield database
    # The PostgreSQL database is the session's, which other tests check against the schema.
    with database.transaction() as repo:
        repo.connection.execute(text("DROP TABLE children"))
        repo.connection.execute(text("DROP TABLE items"))
    database.dispose()


@pytest.fixture
def commits(database) -> list[int]:
    """One entry per COMMIT the engine sends."""
    seen: list[int] = []
    event.listen(database.engine, "commit", lambda _connection: seen.append(1))
    return seen


def stored(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return {row.name for row in connection.execute(text("SELECT name FROM items"))}


def insert(name: str) -> Callable[[Repository], str]:
    def work(repo: Repository) -> str:
        repo.connection.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": name})
        return f"stored {name}"

    return work


class Caller(threading.Thread):
    """Runs one unit of work through the committer and keeps its result or its error."""

    def __init__(self, committer: GroupCommitter, work: Callable[[Repository], object]) -> None:
        super().__init__(daemon=True)
        self.committer, self.work = committer, work
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.committer.run(self.work)
        except BaseException as error:  # noqa: BLE001 - checked by the test
            self.error = error


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def group_behind_a_blocked_leader(
    committer: GroupCommitter, works: list[Callable[[Repository], object]], *, leader_name: str = "leader"
) -> tuple[Caller, list[Caller]]:
    """A leader whose transaction stays in flight until the callers of `works` are queued, in that order."""
    in_flight, release = threading.Event(), threading.Event()

    def blocking(repo: Repository) -> str:
        insert(leader_name)(repo)
        in_flight.set()
        assert release.wait(TIMEOUT)
        return f"stored {leader_name}"

    leader = Caller(committer, blocking)
    leader.start()
    assert in_flight.wait(TIMEOUT)
    followers = []
    for index, work in enumerate(works):
        follower = Caller(committer, work)
        follower.start()
        wait_until(lambda count=index + 1: committer.queued() == count)
        followers.append(follower)
    release.set()
    for caller in [leader, *followers]:
        caller.join(TIMEOUT)
        assert not caller.is_alive()
    return leader, followers


def test_a_lone_caller_commits_on_its_own_thread_at_once(database, commits):
    committer = GroupCommitter(database)
    threads = []

    def work(repo: Repository) -> str:
        threads.append(threading.get_ident())
        return insert("alone")(repo)

    started = time.monotonic()
    assert committer.run(work) == "stored alone"
    # No timer, no handoff: the caller's own thread ran its unit, and nothing waited.
    assert threads == [threading.get_ident()]
    assert time.monotonic() - started < 5
    assert stored(database) == {"alone"}
    assert len(commits) == 1
    stats = committer.stats()
    assert (stats.transactions, stats.units, stats.largest_group) == (1, 1, 1)


def test_callers_arriving_during_a_transaction_share_the_next_commit(database, commits):
    committer = GroupCommitter(database)
    leader, followers = group_behind_a_blocked_leader(committer, [insert(f"item-{index}") for index in range(5)])

    assert leader.result == "stored leader"
    assert [follower.result for follower in followers] == [f"stored item-{index}" for index in range(5)]
    assert [follower.error for follower in followers] == [None] * 5
    assert stored(database) == {"leader", *(f"item-{index}" for index in range(5))}
    # The leader's transaction, then one for all five that queued behind it.
    assert len(commits) == 2
    stats = committer.stats()
    assert (stats.transactions, stats.units, stats.largest_group) == (2, 6, 5)


def test_a_group_runs_its_units_in_order_of_arrival(database):
    committer = GroupCommitter(database)
    order: list[str] = []

    def recorded(name: str) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            order.append(name)
            return insert(name)(repo)

        return work

    names = [f"item-{index}" for index in range(8)]
    group_behind_a_blocked_leader(committer, [recorded(name) for name in names])
    assert order == names


def test_a_failing_unit_is_undone_alone_and_its_caller_gets_its_error(database, commits):
    committer = GroupCommitter(database)

    def writes_then_fails(repo: Repository) -> str:
        insert("undone")(repo)
        raise ValueError("bad report")

    works = [insert("first"), writes_then_fails, insert("first"), insert("last")]
    _leader, followers = group_behind_a_blocked_leader(committer, works)

    assert followers[0].result == "stored first"
    assert isinstance(followers[1].error, ValueError)
    assert str(followers[1].error) == "bad report"
    # A statement that fails in the database (a duplicate key) is undone alone too.
    assert isinstance(followers[2].error, exc.IntegrityError)
    assert followers[3].result == "stored last"
    assert stored(database) == {"leader", "first", "last"}
    assert len(commits) == 2


def savepoints_sent(database: Database) -> list[str]:
    """The SAVEPOINT statements the engine sends from now on."""
    sent: list[str] = []

    def seen(_connection, _cursor, statement, _parameters, _context, _executemany):
        if statement.lstrip().upper().startswith("SAVEPOINT"):
            sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    return sent


def test_a_group_in_which_no_unit_fails_commits_with_no_savepoint(database, commits):
    committer = GroupCommitter(database)
    savepoints = savepoints_sent(database)
    _leader, followers = group_behind_a_blocked_leader(committer, [insert(f"item-{index}") for index in range(4)])

    assert [follower.result for follower in followers] == [f"stored item-{index}" for index in range(4)]
    assert stored(database) == {"leader", *(f"item-{index}" for index in range(4))}
    assert savepoints == []
    assert len(commits) == 2


def test_a_group_with_a_failing_unit_runs_again_with_a_savepoint_per_unit(database, commits):
    committer = GroupCommitter(database)
    savepoints = savepoints_sent(database)
    runs: list[str] = []

    def counted(name: str, *, fails: bool = False) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            runs.append(name)
            insert(name)(repo)
            if fails:
                raise ValueError(f"{name} failed")
            return f"stored {name}"

        return work

    works = [counted("a"), counted("b", fails=True), counted("c")]
    _leader, followers = group_behind_a_blocked_leader(committer, works)

    assert [follower.result for follower in followers] == ["stored a", None, "stored c"]
    assert str(followers[1].error) == "b failed"
    assert stored(database) == {"leader", "a", "c"}
    # First together until b raised, rolled back; then each in its own savepoint.
    assert runs == ["a", "b", "a", "b", "c"]
    assert len(savepoints) == 3
    assert len(commits) == 2


def test_a_lone_failing_unit_rolls_back_its_transaction(database):
    committer = GroupCommitter(database)

    def writes_then_fails(repo: Repository) -> None:
        insert("undone")(repo)
        raise ValueError("bad report")

    with pytest.raises(ValueError, match="bad report"):
        committer.run(writes_then_fails)
    assert stored(database) == set()
    assert committer.run(insert("next")) == "stored next"
    assert stored(database) == {"next"}


def test_when_the_group_cannot_commit_every_caller_gets_the_error(database):
    committer = GroupCommitter(database)

    def orphan(repo: Repository) -> str:
        # A deferred foreign key is checked at COMMIT: the unit succeeds, the group's commit fails.
        repo.connection.execute(text("INSERT INTO children (name, parent) VALUES ('orphan', 'missing')"))
        return "stored orphan"

    _leader, followers = group_behind_a_blocked_leader(committer, [insert("a"), orphan, insert("b")])

    assert [follower.result for follower in followers] == [None, None, None]
    assert all(isinstance(follower.error, exc.IntegrityError) for follower in followers)
    assert stored(database) == {"leader"}
    # The committer goes on: the next caller leads a transaction of its own.
    assert committer.run(insert("after")) == "stored after"
    assert stored(database) == {"leader", "after"}


def test_when_the_database_ends_the_transaction_midway_nothing_after_it_is_written(database):
    committer = GroupCommitter(database)

    def ends_the_transaction(repo: Repository) -> None:
        # As SQLite does by itself after some errors (a full disk): the whole transaction is gone.
        repo.connection.exec_driver_sql("ROLLBACK")
        raise ValueError("disk full")

    _leader, followers = group_behind_a_blocked_leader(committer, [insert("a"), ends_the_transaction, insert("b")])

    assert all(isinstance(follower.error, StoreUnavailable) for follower in followers)
    # Without the check "b" would run outside any transaction and commit on its own.
    assert stored(database) == {"leader"}
    assert committer.run(insert("after")) == "stored after"
    assert stored(database) == {"leader", "after"}


def test_after_commit_callbacks_run_on_their_callers_thread_only_for_committed_units(database):
    committer = GroupCommitter(database)
    ran: dict[str, int] = {}

    def with_callback(name: str, fails: bool) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            repo.after_commit(lambda: ran.setdefault(name, threading.get_ident()))
            if fails:
                raise ValueError(name)
            return insert(name)(repo)

        return work

    _leader, followers = group_behind_a_blocked_leader(
        committer, [with_callback("kept", False), with_callback("failed", True)]
    )
    assert ran == {"kept": followers[0].ident}


def test_a_group_is_at_most_max_group_size_and_the_rest_follow_in_order(database, commits):
    committer = GroupCommitter(database, max_group_size=2)
    names = [f"item-{index}" for index in range(5)]
    _leader, followers = group_behind_a_blocked_leader(committer, [insert(name) for name in names])
    assert [follower.result for follower in followers] == [f"stored {name}" for name in names]
    # The leader's, then groups of two, two and one.
    assert len(commits) == 4
    assert committer.stats().largest_group == 2


def test_many_threads_each_get_their_own_result(database):
    committer = GroupCommitter(database)
    callers = [Caller(committer, insert(f"item-{index}")) for index in range(40)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(TIMEOUT)
    assert [caller.result for caller in callers] == [f"stored item-{index}" for index in range(40)]
    assert stored(database) == {f"item-{index}" for index in range(40)}
    stats = committer.stats()
    assert stats.units == 40
    assert stats.transactions <= 40


# SQLite takes one writer at a time: one lane, and transactions never wait for each other's rows.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_with_two_lanes_a_second_caller_goes_straight_in_and_a_third_waits(database, commits):
    committer = GroupCommitter(database, lanes=2)
    in_flight = threading.Semaphore(0)
    releases = {"first": threading.Event(), "second": threading.Event()}

    def held_open(name: str) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            in_flight.release()
            assert releases[name].wait(TIMEOUT)
            return insert(name)(repo)

        return work

    first, second = Caller(committer, held_open("first")), Caller(committer, held_open("second"))
    first.start()
    assert in_flight.acquire(timeout=TIMEOUT)
    second.start()
    # Both transactions are in flight at once: the second caller did not wait for the first.
    assert in_flight.acquire(timeout=TIMEOUT)
    waiting = [Caller(committer, insert(f"item-{index}")) for index in range(3)]
    for count, caller in enumerate(waiting, start=1):
        caller.start()
        wait_until(lambda count=count: committer.queued() == count)
    # The first lane frees up: the first caller waiting takes it, and the two behind it with it.
    releases["first"].set()
    for caller in [first, *waiting]:
        caller.join(TIMEOUT)
    assert len(commits) == 2
    releases["second"].set()
    second.join(TIMEOUT)
    assert [caller.result for caller in [first, second, *waiting]] == [
        "stored first",
        "stored second",
        *(f"stored item-{index}" for index in range(3)),
    ]
    assert len(commits) == 3
    assert committer.stats().largest_group == 3


def alone_when_shared(name: str, error: Exception, ran: list[tuple[str, bool]]) -> Callable[[Repository], str]:
    """Writes, then raises `error` if its transaction is shared; once alone, stores `name` and
    registers an after-commit callback."""

    def work(repo: Repository) -> str:
        shared = shares_transaction()
        insert(f"{name}-{'shared' if shared else 'alone'}")(repo)
        repo.after_commit(lambda: ran.append((name, shares_transaction())))
        if shared:
            raise error
        return f"stored {name}"

    return work


@pytest.mark.parametrize("error", [RunAlone(), LockConflict("deadlock")], ids=["run-alone", "deadlock"])
def test_a_unit_that_cannot_share_runs_again_in_a_transaction_of_its_own(database, commits, error):
    committer = GroupCommitter(database)
    ran: list[tuple[str, bool]] = []
    _leader, followers = group_behind_a_blocked_leader(
        committer, [insert("first"), alone_when_shared("loner", error, ran), insert("last")]
    )

    assert [follower.result for follower in followers] == ["stored first", "stored loner", "stored last"]
    assert [follower.error for follower in followers] == [None, None, None]
    # Its writes in the group were undone, with the callback it registered there; it ran again
    # alone, and that run's callback ran once committed.
    assert stored(database) == {"leader", "first", "last", "loner-alone"}
    assert ran == [("loner", False)]
    # The leader's transaction, the group's, and the loner's own.
    assert len(commits) == 3
    assert committer.stats().alone == 1


def test_a_lone_unit_does_not_share_its_transaction(database):
    committer = GroupCommitter(database)
    ran: list[tuple[str, bool]] = []
    assert committer.run(alone_when_shared("single", RunAlone(), ran)) == "stored single"
    assert stored(database) == {"single-alone"}
    assert committer.stats().alone == 0


# SQLite takes one writer at a time: one lane, and transactions never wait for each other's rows.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_deadlock_between_transactions_is_a_lock_conflict(database):
    with database.transaction() as repo:
        repo.connection.execute(text("INSERT INTO items (name) VALUES ('x'), ('y')"))
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    errors: list[BaseException] = []

    def lock_both(first: str, second: str) -> None:
        try:
            with database.transaction() as repo:
                lock = text("SELECT name FROM items WHERE name = :name FOR UPDATE")
                repo.connection.execute(lock, {"name": first})
                barrier.wait()
                repo.connection.execute(lock, {"name": second})
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    threads = [threading.Thread(target=lock_both, args=pair) for pair in [("x", "y"), ("y", "x")]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    # PostgreSQL broke the cycle by cancelling one of the two; the other committed.
    assert len(errors) == 1
    assert isinstance(errors[0], LockConflict)


# SQLite takes one writer at a time: one lane, and transactions never wait for each other's rows.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_units_of_two_groups_that_deadlock_each_other_all_succeed(database):
    """Two processes' groups lock the same two rows in opposite orders: PostgreSQL cancels one
    unit's statement, its group rolls back and runs again, each unit in its own savepoint, once
    the other group has its locks; every unit succeeds."""
    with database.transaction() as repo:
        repo.connection.execute(text("INSERT INTO items (name) VALUES ('x'), ('y')"))
    both_hold_one = threading.Barrier(2, timeout=TIMEOUT)
    runs: list[str] = []

    def lock(name: str, *, then_wait: bool = False) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            runs.append(name)
            repo.connection.execute(text("SELECT name FROM items WHERE name = :name FOR UPDATE"), {"name": name})
            if then_wait and shares_transaction() and not both_hold_one.broken and runs.count(name) == 1:
                both_hold_one.wait()
            return f"locked {name}"

        return work

    committers = [GroupCommitter(database), GroupCommitter(database)]
    results: dict[int, list[object]] = {}

    def run_group(index: int, first: str, second: str) -> None:
        _leader, followers = group_behind_a_blocked_leader(
            committers[index], [lock(first, then_wait=True), lock(second)], leader_name=f"leader-{index}"
        )
        results[index] = [follower.error or follower.result for follower in followers]

    groups = [threading.Thread(target=run_group, args=args) for args in [(0, "x", "y"), (1, "y", "x")]]
    for group in groups:
        group.start()
    for group in groups:
        group.join(TIMEOUT * 2)
    assert results == {0: ["locked x", "locked y"], 1: ["locked y", "locked x"]}
    # Each row was locked once by each group, and once more by the group that ran again.
    assert sorted(runs) == ["x", "x", "x", "y", "y", "y"]
    assert sum(committer.stats().alone for committer in committers) == 0
