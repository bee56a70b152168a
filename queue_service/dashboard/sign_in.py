"""Sign-in protection: a growing delay after failed sign-ins, and the list of signed-out sessions."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from queue_service.clock import Clock, SystemClock

ANYONE = "*"


@dataclass(frozen=True)
class ThrottleSettings:
    # Failures allowed before any delay: per client (typos happen), and from all clients together.
    free_per_client: int = 3
    free_overall: int = 30
    # The delay after the first failure past the free ones; it doubles with each further failure.
    first_delay: timedelta = timedelta(seconds=1)
    longest_delay: timedelta = timedelta(minutes=5)
    # A count is forgotten after this long without a failure.
    forget_after: timedelta = timedelta(minutes=15)
    # Clients remembered at once; the oldest are forgotten first (the overall count still holds).
    max_clients: int = 10_000


@dataclass
class _Failures:
    count: int = 0
    last: datetime | None = None


@dataclass
class SignInThrottle:
    """Failed sign-ins per client address and overall; each one past the free ones doubles the wait.

    An attempt during the wait is refused without asking the server, so guessing tokens costs
    time whatever the guesser's addresses. An attempt counts as failed from its start, until the
    server accepts the token: attempts sent all at once cannot pass before the first answer.
    One dashboard process counts its own attempts.
    """

    settings: ThrottleSettings = field(default_factory=ThrottleSettings)
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Failures] = OrderedDict()
        self._overall = _Failures()

    def attempt(self, client: str) -> timedelta:
        """Start an attempt of `client`: zero, counted as failed for now; or how long it must still wait."""
        now = self.clock.now()
        with self._lock:
            wait = max(
                self._remaining(self._clients.get(client), self.settings.free_per_client, now),
                self._remaining(self._overall, self.settings.free_overall, now),
            )
            if wait:
                return wait
            failures = self._clients.pop(client, None) or _Failures()
            self._clients[client] = self._count(failures, now)
            self._count(self._overall, now)
            while len(self._clients) > self.settings.max_clients:
                self._clients.popitem(last=False)
        return timedelta(0)

    def succeeded(self, client: str) -> None:
        """The attempt signed in: the client starts afresh, and it is no failure overall."""
        with self._lock:
            self._clients.pop(client, None)
            self._overall.count = max(self._overall.count - 1, 0)

    def undecided(self, client: str) -> None:
        """The attempt told nothing about the token (the server was unreachable): it does not count."""
        with self._lock:
            failures = self._clients.get(client)
            if failures is not None:
                failures.count = max(failures.count - 1, 0)
            self._overall.count = max(self._overall.count - 1, 0)

    def _count(self, failures: _Failures, now: datetime) -> _Failures:
        if failures.last is not None and now - failures.last >= self.settings.forget_after:
            failures.count = 0
        failures.count += 1
        failures.last = now
        return failures

    def _remaining(self, failures: _Failures | None, free: int, now: datetime) -> timedelta:
        if failures is None or failures.last is None or failures.count < free:
            return timedelta(0)
        if now - failures.last >= self.settings.forget_after:
            return timedelta(0)
        doublings = min(failures.count - free, 32)
        delay = min(self.settings.first_delay * (2**doublings), self.settings.longest_delay)
        return max(failures.last + delay - now, timedelta(0))


def whole_seconds(delay: timedelta) -> int:
    return max(1, math.ceil(delay.total_seconds()))


@dataclass
class SignedOutSessions:
    """Session ids signed out before their cookie expires: a copied cookie stops working at logout.

    The list lives in this process: another dashboard process sharing the session secret does not
    see it, and a restart forgets it (see the README on running several dashboards).
    """

    lifetime: timedelta
    clock: Clock = field(default_factory=SystemClock)
    max_entries: int = 100_000

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._until: OrderedDict[str, datetime] = OrderedDict()

    def revoke(self, session_id: str) -> None:
        now = self.clock.now()
        with self._lock:
            self._until[session_id] = now + self.lifetime
            self._until.move_to_end(session_id)
            # Entries are added in time order, so the expired ones are at the front.
            while self._until and (next(iter(self._until.values())) <= now or len(self._until) > self.max_entries):
                self._until.popitem(last=False)

    def is_revoked(self, session_id: str) -> bool:
        with self._lock:
            until = self._until.get(session_id)
        return until is not None and until > self.clock.now()
