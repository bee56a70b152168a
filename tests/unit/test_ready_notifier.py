"""ReadyNotifier wakes one waiting long-poll per ready job, on that job's queue, and remembers empty looks."""

from __future__ import annotations

import time
from contextlib import ExitStack

from queue_service.core.notify import ReadyNotifier


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
