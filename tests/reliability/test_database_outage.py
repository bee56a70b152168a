"""The database goes away under load and comes back: the service says so, then heals by itself.

The test runs its own PostgreSQL (never the machine's shared one), puts producers and workers on
a `queue-service serve` process over it, and crashes PostgreSQL (`pg_ctl stop -m immediate`) in
the middle. While it is down every RPC gets UNAVAILABLE and health says NOT_SERVING; once it is
back the same server process serves again within seconds, and every write a client saw
acknowledged is in the database.
"""

from __future__ import annotations

import threading
import time

import pytest
from grpc_health.v1 import health_pb2
from jobqueue import JobClient, JobQueueError

from tests.reliability.client_load import (
    Ledger,
    assert_nothing_acknowledged_is_lost,
    serves_again,
    start_load,
    stop_load,
)
from tests.reliability.processes import ServerProcess, clean_env, health_status, wait_for
from tests.reliability.throwaway_postgres import ThrowawayPostgres, required_server_binaries

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
QUEUE = "outage"
MAX_LOAD_SECONDS = 60
RECOVERY_LIMIT_SECONDS = 5.0


@pytest.fixture
def throwaway_postgres():
    postgres = ThrowawayPostgres(required_server_binaries())
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.destroy()  # even when the test failed half-way, with the server stopped or not


@pytest.mark.slow
def test_a_database_outage_is_reported_and_healed_without_a_restart(throwaway_postgres, tmp_path):
    postgres = throwaway_postgres
    server = ServerProcess(
        postgres.url,
        tmp_path / "server.log",
        args=("--migrate", "--health-check-interval", "0.2"),
        env=clean_env(),
    ).start()
    ledger = Ledger()
    stop = threading.Event()
    threads = []
    began = time.monotonic()
    try:
        assert health_status(server.target) == SERVING
        threads = start_load(server.target, QUEUE, ledger, stop, producers=2, workers=2)
        wait_for(lambda: len(ledger.completed) >= 50, timeout=30, message="jobs flowing before the outage")

        postgres.stop("immediate")
        ledger.phase = "outage"
        wait_for(lambda: health_status(server.target) == NOT_SERVING, timeout=5, message="health NOT_SERVING")
        with JobClient(server.target, timeout=5, retry=False) as probe:
            with pytest.raises(JobQueueError) as raised:
                probe.get_job(next(iter(ledger.enqueued)))
        assert (raised.value.code.name, raised.value.reason) == ("UNAVAILABLE", "DATABASE_UNAVAILABLE")
        time.sleep(1.5)  # the load keeps calling through the outage

        # Calls from here on may find PostgreSQL back before pg_ctl says so.
        ledger.phase = "recovery"
        postgres.start()
        restarted = time.monotonic()

        wait_for(
            lambda: serves_again(server.target, QUEUE, "after-the-outage"),
            timeout=RECOVERY_LIMIT_SECONDS,
            interval=0.05,
            message="the service to heal by itself",
        )
        healed_after = time.monotonic() - restarted
        ledger.phase = "after"
        completed_before = len(ledger.completed)
        wait_for(lambda: len(ledger.completed) >= completed_before + 50, timeout=30, message="jobs flowing again")
    finally:
        stop_load(stop, threads)
        elapsed = time.monotonic() - began
        pid_alive = server.alive()
        server.stop()
    assert elapsed < MAX_LOAD_SECONDS + 60
    assert pid_alive and server.starts == 1, "the same server process served throughout, never restarted"

    outage = ledger.codes_in("outage")
    assert outage.get("UNAVAILABLE", 0) > 0, ledger.codes
    assert set(outage) <= {"UNAVAILABLE"}, f"during the outage only UNAVAILABLE: {outage}"
    for phase in ("before", "recovery", "after"):
        assert set(ledger.codes_in(phase)) <= {"OK", "UNAVAILABLE"}, (phase, ledger.codes)
    assert ledger.codes_in("after").get("UNAVAILABLE", 0) == 0, "healed means no more UNAVAILABLE"

    # No acknowledged write is lost: every acknowledged enqueue, lease and completion is in the database.
    assert_nothing_acknowledged_is_lost(ledger, postgres.url)
    assert len(ledger.completed) >= 100
    assert "Traceback" not in server.log_text()
    print(
        f"outage: {len(ledger.enqueued)} enqueues and {len(ledger.completed)} completions acknowledged, "
        f"healed {healed_after:.2f}s after PostgreSQL was back, codes {dict(ledger.codes)}"
    )
