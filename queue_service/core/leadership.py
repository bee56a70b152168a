"""Named leases with a term, stored in the database: leader election and the single-sweeper lock.

Like River's leader elector: a holder elects itself by taking a lapsed (or missing) row,
re-elects itself before the row lapses, and resigns by letting it lapse at once. Every
election raises the term, so a holder whose lease lapsed and was taken over cannot renew it:
re-election compares holder and term. Times come from the injected clock; replicas' clocks
must agree to well within a lease term.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from queue_service.clock import Clock
from queue_service.domain import LeaseRecord
from queue_service.store.database import Database

logger = logging.getLogger(__name__)

# The lease of the replica that runs the scheduled recovery sweeps.
RECOVERY_LEADER = "recovery-leader"


def default_node_id() -> str:
    """Unique per process: a restarted replica must not inherit the lease of its previous life."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    """One holder's view of a named lease row. Thread-safe."""

    def __init__(
        self, database: Database, clock: Clock, name: str, holder: str, ttl: timedelta, *, log_level: int = logging.INFO
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("lease ttl must be positive")
        self.database = database
        self.clock = clock
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.log_level = log_level
        self._lock = threading.Lock()
        self._held: LeaseRecord | None = None

    @property
    def term(self) -> int | None:
        with self._lock:
            return self._held.term if self._held else None

    @property
    def is_held(self) -> bool:
        """Held and, by our clock, not yet lapsed."""
        with self._lock:
            held = self._held
        return held is not None and self.clock.now() < held.expires_at

    def elect(self, *, next_run_at: datetime | None = None) -> bool:
        """Take the lease if it is free or lapsed. True if we hold it afterwards.

        `next_run_at` is stored with the lease for others to read: when the holder runs next."""
        if self.is_held:
            return self.reelect(next_run_at=next_run_at)
        now = self.clock.now()
        with self.database.transaction() as repo:
            record = repo.elect_lease(
                self.name, self.holder, now=now, expires_at=now + self.ttl, next_run_at=next_run_at
            )
        with self._lock:
            self._held = record
        if record:
            logger.log(self.log_level, "%s: %s elected (term %d)", self.name, self.holder, record.term)
        return record is not None

    def reelect(self, *, next_run_at: datetime | None = None) -> bool:
        """Extend the lease we hold. False (and no longer held) if another holder took it over."""
        with self._lock:
            held = self._held
        if held is None:
            return False
        now = self.clock.now()
        with self.database.transaction() as repo:
            record = repo.reelect_lease(
                self.name, self.holder, held.term, now=now, expires_at=now + self.ttl, next_run_at=next_run_at
            )
        with self._lock:
            if self._held is not None and self._held.term == held.term:
                self._held = record
        if record is None:
            logger.warning("%s: %s lost the lease (term %d)", self.name, self.holder, held.term)
        return record is not None

    def tick(self, *, next_run_at: datetime | None = None) -> bool:
        """One election round: re-elect if we hold the lease, otherwise try to elect."""
        with self._lock:
            held = self._held
        if held is not None:
            return self.reelect(next_run_at=next_run_at)
        return self.elect(next_run_at=next_run_at)

    def renew_if_due(self) -> bool:
        """Re-elect when a third of the ttl has passed since the last renewal, so that long work keeps it."""
        with self._lock:
            held = self._held
        if held is None:
            return False
        if self.clock.now() - held.renewed_at < self.ttl / 3:
            return True
        return self.reelect()

    def resign(self) -> None:
        """Give the lease up at once; a lease already lost is left alone."""
        with self._lock:
            held, self._held = self._held, None
        if held is None:
            return
        with self.database.transaction() as repo:
            resigned = repo.resign_lease(self.name, self.holder, held.term, now=self.clock.now())
        if resigned:
            logger.log(self.log_level, "%s: %s resigned (term %d)", self.name, self.holder, held.term)

    def current(self) -> LeaseRecord | None:
        """The stored row, whoever holds it."""
        with self.database.transaction() as repo:
            return repo.get_lease(self.name)


def current_holder(lease: LeaseRecord | None, now: datetime) -> LeaseRecord | None:
    """The stored lease if someone holds it now (not lapsed, not resigned), else None."""
    return lease if lease is not None and now < lease.expires_at else None
