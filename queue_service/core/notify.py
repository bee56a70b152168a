"""Wakes long-polling leases in this process when a job may have become ready."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager


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
        # Per queue: bumped whenever a job may have become ready in it here ("" for all queues).
        self._versions: Counter[str] = Counter()
        # Per queue: (when a look found it empty, its version then).
        self._seen_empty: dict[str, tuple[float, int]] = {}

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
        """Wake every waiter (many jobs may be ready, or the server is stopping)."""
        with self._lock:
            self._versions[""] += 1
            for woken in self._waiters:
                woken.set()

    def notify_ready(self, queue_names: Iterable[str]) -> None:
        """Wake one waiter per name given: each name stands for one job made ready in that queue."""
        ready = Counter(queue_names)
        if not ready:
            return
        with self._lock:
            self._versions.update(ready.keys())
            for woken, names in self._waiters.items():
                if woken.is_set():
                    continue
                name = next((name for name in names if ready[name] > 0), None)
                if name is not None:
                    ready[name] -= 1
                    woken.set()
