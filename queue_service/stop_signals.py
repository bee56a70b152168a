"""SIGTERM and SIGINT as a stop request that the main thread can wait for without a lock.

A Python signal handler runs on the main thread, between two of its bytecodes, wherever that
thread happens to be. A handler that sets a `threading.Event` takes the event's lock; if the
main thread was interrupted inside `Event.wait()` while holding that same lock, the handler
waits for itself forever, and the process never stops. Here the handler only assigns a value,
and the wait is a `select()` on the socket that `signal.set_wakeup_fd` writes each signal's
number to: a signal that arrives before the wait begins is still in the socket, so none is
missed.
"""

from __future__ import annotations

import select
import signal
import socket
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Catches the given signals (SIGTERM and SIGINT by default) from `install()` until `uninstall()`."""

    def __init__(self, signums: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signums = tuple(signal.Signals(signum) for signum in signums)
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._received: signal.Signals | None = None
        self._previous_handlers: dict[signal.Signals, object] = {}
        self._previous_wakeup_fd = -1

    def install(self) -> StopSignals:
        """Start catching; call from the main thread, as `signal.signal` requires."""
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.signums:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def uninstall(self) -> None:
        """Restore the handlers and wakeup fd found at `install()`, and close the socket pair."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        self._reader.close()
        self._writer.close()

    def _on_signal(self, signum: int, _frame) -> None:
        # An assignment only: no lock may be taken here (see the module's docstring).
        if self._received is None:
            self._received = signal.Signals(signum)

    @property
    def received(self) -> signal.Signals | None:
        """The first stop signal caught, or None; never blocks."""
        self._drain()
        return self._received

    def wait(self, timeout: float | None = None) -> signal.Signals | None:
        """Block until a stop signal has arrived (at once if one already has) and return it, or
        None after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.received is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            select.select([self._reader], [], [], remaining)
        return self._received

    def _drain(self) -> None:
        # The wakeup byte may be read before the Python handler has run (it runs at the main
        # thread's next bytecode), so the byte itself counts as the signal.
        while True:
            try:
                data = self._reader.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for number in data:
                if self._received is None and number in self.signums:
                    self._received = signal.Signals(number)
