"""Leader election for the recovery scheduler: elect, re-elect, resign and take over, with a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from queue_service.core.errors import Aborted
from queue_service.core.jobs import JobManager
from queue_service.core.leadership import Lease
from queue_service.core.sweep.runner import Recovery
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.task import SweepTask, no_checkpoint
from queue_service.domain import RunStatus
from queue_service.scheduler import RecoveryScheduler
from queue_service.store.database import Database

TERM = timedelta(seconds=30)


@pytest.fixture
def databases(database_url) -> Iterator[list[Database]]:
    """One engine per replica, all on the same database."""
    engines = [Database(database_url) for _ in range(3)]
    yield engines
    for engine in engines:
        engine.dispose()


def lease(database, clock, holder, ttl=TERM) -> Lease:
    return Lease(database, clock, "test-leader", holder, ttl)


def test_elect_reelect_and_resign(databases, clock):
    a, b = lease(databases[0], clock, "a"), lease(databases[1], clock, "b")

    assert a.elect()
    assert a.term == 1
    assert not b.elect()
    assert b.current().holder == "a"
    clock.advance(TERM - timedelta(seconds=1))
    assert a.reelect()  # extends the lease: b still cannot take it
    clock.advance(timedelta(seconds=2))
    assert not b.elect()

    a.resign()
    assert not a.is_held
    assert b.elect()  # at once, no waiting for the ttl
    assert b.term == 2
    assert not a.reelect()


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_renew(databases, clock):
    a, b = lease(databases[0], clock, "a"), lease(databases[1], clock, "b")
    assert a.elect()
    clock.advance(TERM - timedelta(microseconds=1))
    assert not b.elect()
    clock.advance(timedelta(microseconds=1))
    assert not a.is_held  # by its own clock, a knows it lapsed

    assert b.elect()
    assert b.term == 2
    assert not a.reelect()
    assert not a.tick()
    assert b.tick()


def test_a_lapsed_lease_nobody_took_is_renewed_under_the_same_term(databases, clock):
    a = lease(databases[0], clock, "a")
    assert a.elect()
    clock.advance(TERM * 2)
    assert a.tick()  # the unchanged term proves nobody held it meanwhile
    assert a.term == 1
    assert a.is_held


def test_concurrent_elections_have_exactly_one_winner(databases, clock):
    candidates = [lease(database, clock, f"node-{index}") for index, database in enumerate(databases)]
    barrier = threading.Barrier(len(candidates))
    results: dict[str, bool] = {}

    def campaign(candidate: Lease) -> None:
        barrier.wait()
        results[candidate.holder] = candidate.elect()

    threads = [threading.Thread(target=campaign, args=(candidate,)) for candidate in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results.values()) == [False, False, True]
    (winner,) = [name for name, won in results.items() if won]
    assert candidates[0].current().holder == winner


def scheduler(database, clock, node_id, **settings) -> RecoveryScheduler:
    recovery = Recovery(
        JobManager(database, clock), RecoverySettings(node_id=node_id, leader_lease_term=TERM, **settings)
    )
    return RecoveryScheduler(recovery)


def test_only_the_leader_sweeps_and_another_takes_over_when_it_resigns(databases, clock):
    first, second = scheduler(databases[0], clock, "first"), scheduler(databases[1], clock, "second")

    assert first.elect_once()
    assert not second.elect_once()
    assert first.is_leader and not second.is_leader
    assert second.sweep_once() is None
    run = first.sweep_once()
    assert run.status == RunStatus.SUCCEEDED and run.node_id == "first"

    first.stop()  # resigns

    assert not first.is_leader
    assert second.elect_once()
    assert first.sweep_once() is None
    assert second.sweep_once().node_id == "second"


def test_another_replica_takes_over_within_one_term_when_the_leader_dies(databases, clock):
    first, second = scheduler(databases[0], clock, "first"), scheduler(databases[1], clock, "second")
    assert first.elect_once()
    election_interval = first.election_interval
    assert election_interval == TERM / 4

    # The leader renews on its election rounds, then dies right after one: no resignation.
    clock.advance(election_interval)
    assert first.elect_once()
    assert not second.elect_once()
    # The follower keeps trying every election interval; it must win before one term has passed.
    waited = timedelta(0)
    while not second.elect_once():
        clock.advance(election_interval)
        waited += election_interval
        assert waited <= TERM
    assert second.is_leader
    assert second.sweep_once().node_id == "second"
    # The old leader, were it only paused, finds out at its next round and stops sweeping.
    assert not first.elect_once()
    assert first.sweep_once() is None


def test_two_nodes_sweeping_concurrently_never_overlap(databases, clock):
    """Both nodes try to sweep as fast as they can; the sweep lock lets one at a time through."""
    log: list[tuple[str, str]] = []
    log_lock = threading.Lock()

    class Recording(SweepTask[None]):
        name = "record"

        def __init__(self, node_id: str) -> None:
            self.node_id = node_id

        def run_once(self, checkpoint=no_checkpoint) -> None:
            with log_lock:
                log.append((self.node_id, "enter"))
            time.sleep(0.002)
            checkpoint()
            with log_lock:
                log.append((self.node_id, "exit"))

    nodes = [
        Recovery(JobManager(database, clock), RecoverySettings(node_id=name), tasks=[Recording(name)])
        for name, database in zip(("a", "b"), databases)
    ]
    outcomes = {"a": {"ran": 0, "aborted": 0}, "b": {"ran": 0, "aborted": 0}}
    barrier = threading.Barrier(2)

    def hammer(node: Recovery) -> None:
        barrier.wait()
        for _ in range(25):
            try:
                assert node.run_once().status == RunStatus.SUCCEEDED
                outcomes[node.node_id]["ran"] += 1
            except Aborted:
                outcomes[node.node_id]["aborted"] += 1

    threads = [threading.Thread(target=hammer, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # Enter and exit strictly alternate, each pair from one node: no two sweeps overlapped.
    assert len(log) % 2 == 0 and log
    for enter, leave in zip(log[::2], log[1::2]):
        assert enter[1] == "enter" and leave == (enter[0], "exit")
    ran = outcomes["a"]["ran"] + outcomes["b"]["ran"]
    assert ran == len(log) // 2
    assert ran + outcomes["a"]["aborted"] + outcomes["b"]["aborted"] == 50
