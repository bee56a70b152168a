"""StopSignals: a stop signal is never missed and never deadlocks the waiting main thread."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

from queue_service.stop_signals import StopSignals

# Waits in a tight loop, so that the signals land at every point of `wait()`; a handler that took a
# lock the interrupted main thread holds (as `threading.Event.set()` does) hangs within a few
# thousand rounds here.
WAITING_LOOP = textwrap.dedent(
    """
    import signal, sys
    from queue_service.stop_signals import StopSignals

    for _ in range(int(sys.argv[1])):
        stop = StopSignals((signal.SIGUSR1,)).install()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        while stop.wait(0.00001) is None:
            pass
        sys.stdout.write(f"{stop.received.name}\\n")
        sys.stdout.flush()
        stop.uninstall()
    """
)


def test_signals_landing_anywhere_in_the_wait_never_hang_it():
    rounds = 10000
    process = subprocess.Popen(
        [sys.executable, "-c", WAITING_LOOP, str(rounds)], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        for round_number in range(rounds):
            assert process.stdout.readline() == "ready\n"
            process.send_signal(signal.SIGUSR1)
            readable, _, _ = select.select([process.stdout], [], [], 10)
            assert readable, f"the waiting process hung on signal {round_number + 1}"
            assert process.stdout.readline() == "SIGUSR1\n"
    finally:
        process.kill()
        process.communicate()


@pytest.fixture
def stop_signals():
    stop = StopSignals((signal.SIGUSR1, signal.SIGUSR2)).install()
    yield stop
    stop.uninstall()


def test_a_signal_before_the_wait_is_not_missed(stop_signals):
    assert stop_signals.received is None
    assert stop_signals.wait(0) is None
    os.kill(os.getpid(), signal.SIGUSR2)
    assert stop_signals.wait(0) is signal.SIGUSR2
    assert stop_signals.wait() is signal.SIGUSR2, "a stop request stays received"


def test_the_first_signal_is_the_one_reported(stop_signals):
    os.kill(os.getpid(), signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert stop_signals.wait(1) is signal.SIGUSR1


def test_a_wakeup_byte_counts_even_before_its_handler_ran(stop_signals):
    # The handler runs at the main thread's next bytecode; a wait that reads the byte first must
    # not go back to sleep.
    stop_signals._writer.send(bytes([signal.SIGUSR2]))
    assert stop_signals.wait(0) is signal.SIGUSR2


def test_other_signals_do_not_stop(stop_signals):
    stop_signals._writer.send(bytes([signal.SIGCHLD]))
    assert stop_signals.wait(0.01) is None


def test_uninstall_restores_what_was_there():
    def previous(_signum, _frame):
        pass

    original = signal.signal(signal.SIGUSR1, previous)
    try:
        stop = StopSignals((signal.SIGUSR1,)).install()
        assert signal.getsignal(signal.SIGUSR1) is not previous
        stop.uninstall()
        assert signal.getsignal(signal.SIGUSR1) is previous
        assert signal.set_wakeup_fd(-1) == -1, "the wakeup fd is given back"
    finally:
        signal.signal(signal.SIGUSR1, original)
