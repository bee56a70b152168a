"""FairLock serves waiters in arrival order, so a caller looping over transactions cannot starve another."""

from __future__ import annotations

import threading

from queue_service.store.database import FairLock

WAIT = 10.0  # seconds; only reached if the lock is broken


def wait_until(predicate) -> None:
    event = threading.Event()
    while not predicate():
        event.wait(0.001)


def test_waiters_are_served_in_arrival_order():
    lock = FairLock()
    assert lock.acquire(WAIT)
    served: list[int] = []

    def waiter(number: int) -> None:
        assert lock.acquire(WAIT)
        served.append(number)
        lock.release()

    threads = []
    for number in range(5):
        thread = threading.Thread(target=waiter, args=(number,))
        thread.start()
        threads.append(thread)
        wait_until(lambda: lock._next_ticket == number + 2)  # this waiter holds its ticket
    lock.release()
    for thread in threads:
        thread.join(WAIT)
    assert served == [0, 1, 2, 3, 4]


def test_a_looping_holder_lets_a_waiter_in_at_its_next_release():
    lock = FairLock()
    iterations: list[int] = []
    waiter_served_after: list[int] = []
    waiter_queued = threading.Event()

    def hog() -> None:
        for index in range(500):
            assert lock.acquire(WAIT)
            iterations.append(index)
            if index == 10:
                # Stay inside until the waiter has taken its ticket.
                threading.Thread(target=waiter).start()
                wait_until(waiter_queued.is_set)
                wait_until(lambda: lock._next_ticket > lock._serving + 1)
            lock.release()

    def waiter() -> None:
        waiter_queued.set()
        assert lock.acquire(WAIT)
        waiter_served_after.append(len(iterations))
        lock.release()

    hog_thread = threading.Thread(target=hog)
    hog_thread.start()
    hog_thread.join(WAIT)
    assert waiter_served_after == [11]  # straight after the hold it queued behind, not after the loop


def test_a_waiter_that_times_out_gives_up_its_turn():
    lock = FairLock()
    assert lock.acquire(WAIT)
    outcome: list[bool] = []
    impatient = threading.Thread(target=lambda: outcome.append(lock.acquire(0.05)))
    impatient.start()
    impatient.join(WAIT)
    assert outcome == [False]
    lock.release()

    later: list[bool] = []
    thread = threading.Thread(target=lambda: (later.append(lock.acquire(1.0)), lock.release()))
    thread.start()
    thread.join(WAIT)
    assert later == [True]  # the abandoned ticket was skipped


def test_the_holder_may_enter_again():
    lock = FairLock()
    assert lock.acquire(WAIT) and lock.acquire(WAIT)
    lock.release()
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(lock.acquire(0.05)))
    thread.start()
    thread.join(WAIT)
    assert other == [False]  # still held once
    lock.release()
    thread = threading.Thread(target=lambda: (other.append(lock.acquire(1.0)), lock.release()))
    thread.start()
    thread.join(WAIT)
    assert other == [False, True]
