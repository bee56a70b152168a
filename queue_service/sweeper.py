"""The sweeper process of `serve --workers N`: every sweep of the replica runs there, none in a serving process.

A sweep handles thousands of rows in Python. In a serving process it shares the GIL with the
calls, and each lease waits behind the sweep's batches: during a sweep of 10,000 expired leases,
LeaseJobs p99 rose about 4x when both ran in one process, and 1.3x with the sweep in its own.
So the process group starts one more process that serves no RPC. It runs the replica's recovery
scheduler (leader election, timed sweeps, schedule ticks) and the sweeps TriggerRecovery asks of
any serving process, which hands each over on a Unix socket and waits for its run record.

Long-polls in the serving processes see the jobs a timed sweep made ready at their next look,
within `lease_poll_interval`, as they see jobs enqueued through another process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener

from queue_service.config import ServerConfig, SweeperAddress
from queue_service.core import errors
from queue_service.core.notify import ReadyNotifier
from queue_service.core.sweep.runner import Recovery, Trigger
from queue_service.domain import RecoveryRunRecord
from queue_service.service_core import ServiceCore
from queue_service.store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

# After a refused or failed connection: a broken listener must not spin.
REFUSAL_PAUSE = 0.05
# How often a serving process waiting for a sweep looks whether its caller still waits.
CALLER_CHECK_SECONDS = 0.25

# The domain errors a sweep may be refused with (Aborted: one is running), by name, to raise again
# in the asking process.
_REFUSALS: dict[str, type[errors.QueueError]] = {
    error.__name__: error for error in (errors.QueueError, *errors.QueueError.__subclasses__())
}


class SweeperClient:
    """Recovery as a serving process sees it: the run records are read here, and the sweeps it is
    asked for run in the sweeper process."""

    def __init__(self, recovery: Recovery, address: SweeperAddress, notifier: ReadyNotifier) -> None:
        self.runs = recovery.runs
        self.node_id = recovery.node_id
        self.settings = recovery.settings
        self.address = address
        self.notifier = notifier

    def run_once(
        self,
        trigger: Trigger | str = Trigger.MANUAL,
        *,
        actor: str | None = None,
        caller_waiting: Callable[[], bool] | None = None,
    ) -> RecoveryRunRecord:
        """As Recovery.run_once; raises Unavailable if the sweeper cannot be reached or stops meanwhile.

        With `caller_waiting`, stops waiting (Cancelled) once it says the caller no longer waits:
        the sweep goes on in the sweeper, and its run record tells how it ended."""
        try:
            connection = Client(self.address.path, family="AF_UNIX", authkey=self.address.authkey)
        except OSError as error:
            raise errors.Unavailable(
                f"the sweeper process is not reachable: {error}", reason="SWEEPER_UNAVAILABLE"
            ) from None
        with connection:
            try:
                connection.send((Trigger(trigger).value, actor))
                while not connection.poll(CALLER_CHECK_SECONDS):
                    if caller_waiting is not None and not caller_waiting():
                        raise errors.Cancelled(
                            "the caller stopped waiting; the sweep goes on in the sweeper process",
                            reason="CALLER_GONE",
                        )
                reply = connection.recv()
            except (OSError, EOFError):
                raise errors.Unavailable(
                    "the sweeper process stopped before the sweep ended; its run record tells how far it got",
                    reason="SWEEPER_UNAVAILABLE",
                ) from None
        kind, *detail = reply
        if kind == "run":
            # The sweep may have made jobs ready: this process's long-polls look now.
            self.notifier.notify()
            return detail[0]
        if kind == "refused":
            name, message, reason = detail
            raise _REFUSALS[name](message, reason=reason)
        if kind == "unavailable":
            raise StoreUnavailable(detail[0])
        raise RuntimeError(f"the sweep failed in the sweeper process: {detail[0]}")

    def request_stop(self) -> None:
        """The sweeper process stops its own sweeps when the group stops."""


class Sweeper:
    """The sweeper process's work: the recovery scheduler, and the sweeps handed over on its socket."""

    def __init__(self, config: ServerConfig, address: SweeperAddress) -> None:
        self.core = ServiceCore(config)
        self.address = address
        self.listener = Listener(address.path, family="AF_UNIX", authkey=address.authkey)
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, name="sweeper-accept", daemon=True)
        self._runs: set[threading.Thread] = set()
        self._runs_lock = threading.Lock()

    def start(self) -> Sweeper:
        self._accepting.start()
        if self.core.recovery_scheduler:
            self.core.recovery_scheduler.start()
        return self

    def stop(self) -> None:
        """Stop taking sweeps, stop the running ones at their next batch and the scheduler, wait for
        them, then close."""
        self._closed.set()
        self._wake_accept()
        self._accepting.join(timeout=5)
        self.listener.close()
        self.core.stop_sweeping()
        with self._runs_lock:
            running = list(self._runs)
        for thread in running:
            thread.join()
        self.core.close()

    def _wake_accept(self) -> None:
        # Closing a listening socket does not end an accept() blocked on it in another thread: a
        # connection does. It fails the key exchange, and the loop sees that it is closed.
        try:
            with socket.socket(socket.AF_UNIX) as wake:
                wake.connect(self.address.path)
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self.listener.accept()
            except Exception as error:  # noqa: BLE001 - a caller without the key (AuthenticationError) changes nothing
                if self._closed.is_set():
                    return
                logger.warning("the sweeper refused a connection: %s", error)
                time.sleep(REFUSAL_PAUSE)
                continue
            if self._closed.is_set():
                connection.close()
                return
            thread = threading.Thread(target=self._serve, args=(connection,), name="sweeper-run", daemon=True)
            with self._runs_lock:
                self._runs.add(thread)
            thread.start()

    def _serve(self, connection: Connection) -> None:
        try:
            self._answer(connection)
        finally:
            with self._runs_lock:
                self._runs.discard(threading.current_thread())

    def _answer(self, connection: Connection) -> None:
        with connection:
            try:
                trigger, actor = connection.recv()
            except (OSError, EOFError):
                return
            reply = self._run(trigger, actor)
            try:
                connection.send(reply)
            except OSError:
                logger.warning("recovery run handed over ended, but its caller had gone: %s", reply[0])

    def _run(self, trigger: str, actor: str | None) -> tuple:
        try:
            return ("run", self.core.recovery.run_once(trigger, actor=actor))
        except errors.QueueError as error:
            name = type(error).__name__ if type(error).__name__ in _REFUSALS else errors.QueueError.__name__
            return ("refused", name, error.message, error.reason)
        except StoreUnavailable as error:
            return ("unavailable", str(error))
        except Exception as error:  # noqa: BLE001 - the asking process reports it; this one goes on sweeping
            logger.exception("a recovery run handed over failed")
            return ("failed", f"{type(error).__name__}: {error}")
