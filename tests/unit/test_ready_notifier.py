"""ReadyNotifier wakes one waiting long-poll per ready job, on that job's queue, and remembers empty looks."""

from __future__ import annotations

import time
from contextlib import ExitStack

from queue_service.core.notify import ReadyNotifier
from tests.reliability.processes import wait_for


def test_a_ready_job_wakes_one_waiter_of_its_queue_only():
    notifier = ReadyNotifier()
    with ExitStack() as stack:
        emails = [stack.enter_context(notifier.waiting(["emails"])) for _ in range(3)]
        reports = stack.enter_context(notifier.waiting(["reports", "emails"]))
        notifier.notify_ready(["emails"])
        assert [event.is_set() for event in emails] == [True, False, False]
        assert not reports.is_set()
        notifier.notify_ready(["reports", "emails"])
        assert [event.is_set() for event in emails] == [True, True, False]
        assert reports.is_set()
        notifier.notify()
        assert all(event.is_set() for event in emails)


def test_an_empty_look_is_remembered_until_a_job_is_made_ready_there():
    notifier = ReadyNotifier()
    assert not notifier.recently_empty(["emails"], freshness=60)
    versions = notifier.versions(["emails", "reports"])
    notifier.found_empty(versions, looked_at=time.monotonic())
    assert notifier.recently_empty(["emails", "reports"], freshness=60)
    assert not notifier.recently_empty(["emails", "other"], freshness=60)
    assert not notifier.recently_empty(["emails"], freshness=-1)
    notifier.notify_ready(["emails"])
    assert not notifier.recently_empty(["emails"], freshness=60)
    assert notifier.recently_empty(["reports"], freshness=60)
    notifier.notify()
    assert not notifier.recently_empty(["reports"], freshness=60)


def test_jobs_no_waiter_here_takes_are_relayed_to_the_other_processes():
    notifier = ReadyNotifier()
    relayed = []
    notifier.relay = relayed.append
    notifier.notify_ready(["a", "b", "a"])
    notifier.notify_ready([])
    with notifier.waiting(["a"]) as waiter:
        # One of the two jobs of "a" has a waiter here; the other goes elsewhere.
        notifier.notify_ready(["a", "a"])
        assert waiter.is_set()
        notifier.notify_ready(["b"])
    with notifier.waiting(["a"]):
        notifier.notify_ready(["a"])  # taken here: nothing to relay
    notifier.notify()
    assert relayed == [{"a": 2, "b": 1}, {"a": 1}, {"b": 1}, None]


def test_a_wake_up_from_elsewhere_wakes_here_and_is_not_relayed_back():
    notifier = ReadyNotifier()
    relayed = []
    notifier.relay = relayed.append
    with notifier.waiting(["a"]) as first, notifier.waiting(["a"]) as second, notifier.waiting(["b"]) as other:
        notifier.wake_here({"a": 1})
        assert [first.is_set(), second.is_set(), other.is_set()] == [True, False, False]
        notifier.wake_here(None)
        assert [first.is_set(), second.is_set(), other.is_set()] == [True, True, True]
    assert relayed == []


def test_a_wake_up_from_elsewhere_makes_an_empty_look_stale():
    notifier = ReadyNotifier()
    notifier.found_empty(notifier.versions(["a"]), time.monotonic())
    assert notifier.recently_empty(["a"], 60)
    notifier.wake_here({"a": 1})
    assert not notifier.recently_empty(["a"], 60)


def test_a_job_ready_later_wakes_one_waiter_of_its_queue_when_its_time_comes():
    notifier = ReadyNotifier()
    with ExitStack() as stack:
        emails = [stack.enter_context(notifier.waiting(["emails"])) for _ in range(2)]
        reports = stack.enter_context(notifier.waiting(["reports"]))
        scheduled = time.monotonic()
        notifier.notify_ready_later([("emails", 0.2)])
        assert not any(event.is_set() for event in emails)
        assert emails[0].wait(10)
        assert time.monotonic() - scheduled >= 0.2
        assert not emails[1].is_set()
        assert not reports.is_set()
        assert not notifier.recently_empty(["emails"], freshness=60)


def test_a_job_ready_later_with_no_waiter_here_goes_to_the_other_processes():
    notifier = ReadyNotifier()
    relayed = []
    notifier.relay = relayed.append
    notifier.notify_ready_later([("emails", 0.01), ("emails", 0.01)])
    wait_for(lambda: sum(sum(counts.values()) for counts in relayed) == 2, timeout=10, message="the relay")
    assert all(set(counts) == {"emails"} for counts in relayed)


def test_a_closed_notifier_drops_its_pending_wake_ups():
    closed, sentinel = ReadyNotifier(), ReadyNotifier()
    with closed.waiting(["emails"]) as dropped, sentinel.waiting(["emails"]) as woken:
        closed.notify_ready_later([("emails", 0.01)])
        closed.close()
        sentinel.notify_ready_later([("emails", 0.05)])
        # The timer takes them in order of time: once the later one woke its waiter, the earlier was dropped.
        assert woken.wait(10)
        assert not dropped.is_set()
