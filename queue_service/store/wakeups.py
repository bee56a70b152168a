"""Wake-ups between the processes and replicas sharing one PostgreSQL database, on LISTEN/NOTIFY.

A long-poll waits in one process; the job it waits for may be enqueued, retried or resumed in
another (`serve --workers N`, or another replica). Each process sends what it made ready here to
the others, and wakes its own waiters on what they send.

A wake-up is a hint, never a record: a lost one costs a waiter its next look, which comes within
the lease poll interval anyway. So sending never holds up a caller: a thread sends what gathered
since its last notice, as one notice. A process skips its own notices, and after its listening
connection was lost and made again it wakes every waiter, since it may have missed some.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping

from queue_service.store.database import Database

logger = logging.getLogger(__name__)

CHANNEL = "queue_jobs_ready"
# PostgreSQL refuses a payload of 8,000 bytes or more; a longer list is sent as "every queue".
MAX_PAYLOAD_BYTES = 7_900
# After a lost connection, the next try waits this long.
RECONNECT_SECONDS = 1.0

# What a wake-up names: jobs made ready per queue, or None for "any queue may have some".
ReadyCounts = Mapping[str, int] | None


def encode(origin: str, ready: ReadyCounts) -> str:
    """The notice's payload: its sender, and the queues with the jobs made ready in each."""
    payload = json.dumps({"from": origin, "ready": None if ready is None else dict(ready)}, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        return json.dumps({"from": origin, "ready": None}, separators=(",", ":"))
    return payload


def decode(payload: str) -> tuple[str, ReadyCounts]:
    """(sender, what it made ready); a payload this version cannot read wakes every waiter."""
    try:
        notice = json.loads(payload)
        ready = notice["ready"]
        if ready is not None and not all(isinstance(count, int) for count in ready.values()):
            raise ValueError(payload)
        return str(notice["from"]), ready
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", None


class PostgresWakeups:
    """Sends this process's wake-ups to the others, and gives theirs to `wake_here`."""

    def __init__(self, database: Database, wake_here: Callable[[ReadyCounts], None]) -> None:
        if database.dialect != "postgresql":
            raise ValueError("wake-ups between processes go through PostgreSQL")
        self.database = database
        self.wake_here = wake_here
        self.origin = uuid.uuid4().hex
        self._lock = threading.Condition()
        self._pending: Counter[str] = Counter()
        self._pending_all = False
        self._stopping = threading.Event()
        # Written to end the listener's wait for a notice at once.
        self._stop_read, self._stop_write = os.pipe()
        self._sender = threading.Thread(target=self._send_loop, name="wakeups-send", daemon=True)
        self._listener = threading.Thread(target=self._listen_loop, name="wakeups-listen", daemon=True)

    def start(self) -> PostgresWakeups:
        self._sender.start()
        self._listener.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        os.write(self._stop_write, b"x")
        self._sender.join(timeout=5)
        self._listener.join(timeout=5)
        os.close(self._stop_read)
        os.close(self._stop_write)

    def send(self, ready: ReadyCounts) -> None:
        """Tell the other processes; returns at once (the sender thread sends)."""
        with self._lock:
            if ready is None:
                self._pending_all = True
            else:
                self._pending.update(ready)
            self._lock.notify()

    def _take_pending(self) -> tuple[bool, ReadyCounts]:
        """(True, what to send) once there is something, or (False, None) when stopping."""
        with self._lock:
            while not self._pending_all and not self._pending and not self._stopping.is_set():
                self._lock.wait()
            if self._stopping.is_set():
                return False, None
            ready: ReadyCounts = None if self._pending_all else dict(self._pending)
            self._pending_all = False
            self._pending.clear()
            return True, ready

    def _connect(self):
        """A connection of its own, outside the pool, committing each statement."""
        pooled = self.database.engine.raw_connection()
        pooled.detach()
        connection = pooled.dbapi_connection
        connection.autocommit = True
        return connection

    def _send_loop(self) -> None:
        connection = None
        failing = False
        while True:
            more, ready = self._take_pending()
            if not more:
                break
            try:
                if connection is None:
                    connection = self._connect()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(self.origin, ready)))
                failing = _recovered(failing, "sending wake-ups to the other processes again")
            except Exception as error:  # noqa: BLE001 - a lost hint; the waiters' next look finds the jobs
                failing = _failed(failing, "could not send a wake-up to the other processes", error)
                connection = _closed(connection)
                self._stopping.wait(RECONNECT_SECONDS)
        _closed(connection)

    def _listen_loop(self) -> None:
        connection = None
        failing = False
        while not self._stopping.is_set():
            try:
                if connection is None:
                    connection = self._connect()
                    with connection.cursor() as cursor:
                        cursor.execute(f"LISTEN {CHANNEL}")
                    failing = _recovered(failing, "hearing the other processes' wake-ups again")
                    # Notices sent while this process was not listening are lost: look again everywhere.
                    self.wake_here(None)
                readable, _, _ = select.select([connection, self._stop_read], [], [])
                if self._stop_read in readable:
                    break
                connection.poll()
                while connection.notifies:
                    notice = connection.notifies.pop(0)
                    origin, ready = decode(notice.payload)
                    if origin != self.origin:
                        self.wake_here(ready)
            except Exception as error:  # noqa: BLE001 - listen again later; waiters still look on their own
                if self._stopping.is_set():
                    break
                failing = _failed(failing, "lost the connection that hears the other processes' wake-ups", error)
                connection = _closed(connection)
                self._stopping.wait(RECONNECT_SECONDS)
        _closed(connection)


def _closed(connection) -> None:
    if connection is not None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001, S110 - already broken; nothing more to release
            pass
    return None


# An outage is logged when it begins and when it ends, not at every try in between.
def _failed(failing: bool, what: str, error: Exception) -> bool:
    if not failing:
        logger.warning("%s (trying again every %g s): %s", what, RECONNECT_SECONDS, error)
    return True


def _recovered(failing: bool, what: str) -> bool:
    if failing:
        logger.info(what)
    return False
