"""Wakes long-polling leases when a job may have become ready: in this process, and through a relay
in the others that share its database; at once, or when a job's time to run comes."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

logger = logging.getLogger(__name__)

# Timed wake-ups pending in a process at most. Beyond them a job made ready by the passage of time is
# found at the waiters' next look (the lease poll interval), as every job was before timed wake-ups.
MAX_TIMED_WAKEUPS = 100_000
# The timer wakes at most this often, taking every wake-up due by then: a job due now reaches a
# waiter at most this late, and a steady stream of retries costs the process a bounded number of
# wake-ups (and, across processes, of notices) a second, not one per retry.
TIMER_GRANULARITY_SECONDS = 0.01


class ReadyNotifier:
    """Wakes waiting leases: all of them, or one per job made ready in a queue they wait on.

    Waking every waiter for every enqueue would have each of them query the database, and
    the enqueues behind them wait for those queries. A waiter registers before it looks for
    jobs, so that a wake-up between its look and its wait is not lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Insertion order is arrival order: the longest waiter is woken first.
        self._waiters: dict[threading.Event, Sequence[str]] = {}
        # Per queue: bumped whenever a job may have become ready in it ("" for all queues).
        self._versions: Counter[str] = Counter()
        # Per queue: (when a look found it empty, its version then).
        self._seen_empty: dict[str, tuple[float, int]] = {}
        # Tells the other processes what `notify` and `notify_ready` made ready here, where they
        # share a database that carries it (store/wakeups.py); None: this process alone.
        self.relay: Callable[[Mapping[str, int] | None], None] | None = None
        self.closed = False

    def versions(self, queue_names: Sequence[str]) -> dict[str, int]:
        """To take before looking for jobs, and give to `found_empty` if the look found none."""
        with self._lock:
            return {name: self._versions[name] + self._versions[""] for name in queue_names}

    def found_empty(self, versions: dict[str, int], looked_at: float) -> None:
        with self._lock:
            for name, version in versions.items():
                self._seen_empty[name] = (looked_at, version)

    def recently_empty(self, queue_names: Sequence[str], freshness: float) -> bool:
        """True if every queue was found empty within `freshness` seconds, with no job made ready
        in it here since: a look now would most likely find nothing either."""
        now = time.monotonic()
        with self._lock:
            for name in queue_names:
                seen = self._seen_empty.get(name)
                if seen is None or now - seen[0] > freshness or seen[1] != self._versions[name] + self._versions[""]:
                    return False
        return True

    def waiter_count(self) -> int:
        """How many leases wait here now."""
        with self._lock:
            return len(self._waiters)

    @contextmanager
    def waiting(self, queue_names: Sequence[str]) -> Iterator[threading.Event]:
        """Register a waiter on `queue_names`; the event is set when it should look again."""
        woken = threading.Event()
        with self._lock:
            self._waiters[woken] = tuple(queue_names)
        try:
            yield woken
        finally:
            with self._lock:
                del self._waiters[woken]

    def notify(self) -> None:
        """Wake every waiter, here and in the other processes (many jobs may be ready)."""
        self.wake_here(None)
        if self.relay is not None:
            self.relay(None)

    def notify_ready(self, queue_names: Iterable[str]) -> None:
        """Wake one waiter per name given: each name stands for one job made ready in that queue.
        The jobs no waiter here takes go to the other processes' waiters."""
        ready = Counter(queue_names)
        if not ready:
            return
        left = self.wake_here(ready)
        if left and self.relay is not None:
            self.relay(left)

    def notify_ready_later(self, later: Iterable[tuple[str, float]]) -> None:
        """`notify_ready` for each (queue name, seconds) once that many seconds have passed: a job
        that becomes ready by the passage of time (a retry's delay, a job enqueued to run later)
        then reaches a waiting lease, here or in another process, when it does, not at that
        lease's next look."""
        _TIMER.schedule(self, later)

    def close(self) -> None:
        """Timed wake-ups still pending for this notifier are dropped (its server stopped)."""
        self.closed = True

    def wake_here(self, ready: Mapping[str, int] | None) -> Counter[str]:
        """Wake this process's waiters only: one per job made ready in a queue they wait on, or all
        of them for None (any queue may have jobs, or the server is stopping). Returns the jobs
        left without a waiter here."""
        with self._lock:
            if ready is None:
                self._versions[""] += 1
                for woken in self._waiters:
                    woken.set()
                return Counter()
            left = Counter(ready)
            self._versions.update(left.keys())
            for woken, names in self._waiters.items():
                if woken.is_set():
                    continue
                name = next((name for name in names if left[name] > 0), None)
                if name is not None:
                    left[name] -= 1
                    woken.set()
            return +left


class _ReadyTimer:
    """One thread per process for every notifier's timed wake-ups, started at the first; it sleeps
    until the earliest is due, or, with none pending, until one is scheduled."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        # (due on the monotonic clock, tie-breaker, notifier, queue name); a notifier gone or closed
        # is skipped when its entry comes due.
        self._due: list[tuple[float, int, weakref.ref[ReadyNotifier], str]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, notifier: ReadyNotifier, later: Iterable[tuple[str, float]]) -> None:
        now = time.monotonic()
        owner = weakref.ref(notifier)
        with self._condition:
            earliest = self._due[0][0] if self._due else None
            for queue_name, seconds in later:
                if len(self._due) >= MAX_TIMED_WAKEUPS:
                    break
                heapq.heappush(self._due, (now + max(seconds, 0.0), next(self._order), owner, queue_name))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ready-timer", daemon=True)
                self._thread.start()
            if self._due and self._due[0][0] != earliest:
                self._condition.notify()  # sooner than the timer sleeps until; else it need not wake

    def _run(self) -> None:
        while True:
            due = self._take_due()
            by_notifier: dict[ReadyNotifier, list[str]] = {}
            for owner, queue_name in due:
                notifier = owner()
                if notifier is not None and not notifier.closed:
                    by_notifier.setdefault(notifier, []).append(queue_name)
            for notifier, names in by_notifier.items():
                try:
                    notifier.notify_ready(names)
                except Exception:  # noqa: BLE001 - the timer serves every notifier; a waiter still polls
                    logger.exception("a timed wake-up of long-polls failed")
            time.sleep(TIMER_GRANULARITY_SECONDS)

    def _take_due(self) -> list[tuple[weakref.ref[ReadyNotifier], str]]:
        """Waits until at least one wake-up is due, and takes every one that is."""
        with self._condition:
            while True:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    taken = []
                    while self._due and self._due[0][0] <= now:
                        _, _, owner, queue_name = heapq.heappop(self._due)
                        taken.append((owner, queue_name))
                    return taken
                self._condition.wait(self._due[0][0] - now if self._due else None)


_TIMER = _ReadyTimer()


def _reset_timer_in_child() -> None:
    # A forked child has none of its parent's threads: it starts its own timer, with nothing pending.
    global _TIMER
    _TIMER = _ReadyTimer()


os.register_at_fork(after_in_child=_reset_timer_in_child)
