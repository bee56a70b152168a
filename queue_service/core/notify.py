"""Wakes long-polling leases in this process when a job may have become ready."""

from __future__ import annotations

import threading


class ReadyNotifier:
    """A generation counter under a condition, so that no wake-up between check and wait is lost."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, since: int, timeout: float) -> bool:
        """Wait until notified after generation `since`, or the timeout; True when notified."""
        with self._condition:
            return self._condition.wait_for(lambda: self._generation != since, timeout=timeout)
