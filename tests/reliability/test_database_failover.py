"""The PostgreSQL primary is lost under load and a synchronous standby takes over: the service follows.

Each test builds its own pair with `initdb` and `pg_basebackup -R` (never the machine's shared
server): a primary with `synchronous_standby_names = '*'`, so that a commit is acknowledged only
once the standby has it, and a streaming standby. A `queue-service serve` process reaches them
through one libpq multi-host URL with `target_session_attrs=read-write`, so that it connects to
whichever of the two takes writes. Producers and workers run against it while the primary is
lost and the standby promoted; the same server process must then serve again by itself, with
every acknowledged write on the new primary and no run handed out twice.

The primary is lost in two ways: its machine dies (`kill -9` of every PostgreSQL process), or an
operator fences it for a switchover (read-only, still up): then the service's pooled connections
are alive but refuse writes with SQLSTATE 25006, and must be dropped rather than reused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2
from jobqueue import JobClient, JobQueueError
from sqlalchemy import create_engine, text

from tests.reliability.client_load import (
    Ledger,
    assert_nothing_acknowledged_is_lost,
    serves_again,
    start_load,
    stop_load,
)
from tests.reliability.processes import ServerProcess, clean_env, health_status, wait_for
from tests.reliability.throwaway_postgres import ThrowawayPostgres, required_server_binaries

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
QUEUE = "failover"
HEAL_LIMIT_SECONDS = 10.0


def multi_host_url(*clusters: ThrowawayPostgres) -> str:
    hosts = "&".join(f"host=127.0.0.1:{cluster.port}" for cluster in clusters)
    return f"postgresql+psycopg2://postgres@/postgres?{hosts}&target_session_attrs=read-write"


def sync_state(primary: ThrowawayPostgres) -> str | None:
    engine = create_engine(primary.url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT sync_state FROM pg_stat_replication")).scalar()
    finally:
        engine.dispose()


def fence(primary: ThrowawayPostgres) -> None:
    """Make the primary refuse writes while it stays up, as before a planned switchover."""
    engine = create_engine(primary.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("ALTER SYSTEM SET default_transaction_read_only = on"))
            connection.execute(text("SELECT pg_reload_conf()"))
    finally:
        engine.dispose()


LOSSES = {"killed": ThrowawayPostgres.kill, "fenced": fence}


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[ThrowawayPostgres, ThrowawayPostgres]]:
    binaries = required_server_binaries()
    # Set on the command line, so the standby's copy of the configuration does not have it: once
    # promoted, it has no standby of its own to wait for. Quoted for the shell pg_ctl starts it with.
    primary = ThrowawayPostgres(binaries, settings={"synchronous_standby_names": "'*'"})
    standby: ThrowawayPostgres | None = None
    try:
        primary.start()
        standby = ThrowawayPostgres(binaries, standby_of=primary)
        standby.start()
        wait_for(lambda: sync_state(primary) == "sync", timeout=30, message="the standby to replicate synchronously")
        yield primary, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


@pytest.mark.parametrize("loss", LOSSES)
def test_losing_the_primary_fails_over_to_the_synchronous_standby_without_a_restart_or_a_lost_write(
    primary_and_standby, loss, tmp_path
):
    primary, standby = primary_and_standby
    server = ServerProcess(
        multi_host_url(primary, standby),
        tmp_path / "server.log",
        args=("--migrate", "--health-check-interval", "0.2"),
        env=clean_env(),
    ).start()
    ledger = Ledger()
    stop = threading.Event()
    threads = []
    try:
        assert health_status(server.target) == SERVING
        threads = start_load(server.target, QUEUE, ledger, stop, producers=2, workers=3)
        wait_for(lambda: len(ledger.completed) >= 50, timeout=30, message="jobs flowing before the failover")

        # 1. The primary is lost: killed with all its processes, or fenced read-only.
        LOSSES[loss](primary)
        ledger.phase = "no primary"
        wait_for(lambda: health_status(server.target) == NOT_SERVING, timeout=5, message="health NOT_SERVING")
        with JobClient(server.target, timeout=5, retry=False) as probe:
            with pytest.raises(JobQueueError) as raised:
                probe.enqueue(QUEUE, "work", job_id="while-no-primary")
        assert (raised.value.code.name, raised.value.reason) == ("UNAVAILABLE", "DATABASE_UNAVAILABLE")
        time.sleep(1.0)  # the load keeps calling while no server takes writes

        # 2. The operator (or a monitor) promotes the standby. Calls from here on may reach it.
        ledger.phase = "promotion"
        standby.promote()
        promoted = time.monotonic()

        # 3. The same server process finds the new primary by itself.
        wait_for(
            lambda: serves_again(server.target, QUEUE, "after-the-failover"),
            timeout=HEAL_LIMIT_SECONDS,
            interval=0.05,
            message="the service to heal by itself",
        )
        healed_after = time.monotonic() - promoted
        ledger.phase = "after"
        completed_before = len(ledger.completed)
        wait_for(lambda: len(ledger.completed) >= completed_before + 50, timeout=30, message="jobs flowing again")
    finally:
        stop_load(stop, threads)
        pid_alive = server.alive()
        server.stop()
    assert pid_alive and server.starts == 1, "the same server process served throughout, never restarted"

    without_primary = ledger.codes_in("no primary")
    assert without_primary.get("UNAVAILABLE", 0) > 0, ledger.codes
    # A fenced primary still answers reads (an empty lease) and finishes what began before the fence.
    expected = {"UNAVAILABLE"} if loss == "killed" else {"OK", "UNAVAILABLE"}
    assert set(without_primary) <= expected, f"without a primary: {without_primary}"
    for phase in ("before", "promotion", "after"):
        assert set(ledger.codes_in(phase)) <= {"OK", "UNAVAILABLE"}, (phase, ledger.codes)
    assert ledger.codes_in("after").get("UNAVAILABLE", 0) == 0, "healed means no more UNAVAILABLE"

    # Read from the standby alone: it is the primary now.
    assert_nothing_acknowledged_is_lost(ledger, standby.url)
    twice = [run for run, count in ledger.leased.items() if count > 1]
    assert not twice, f"runs delivered twice: {twice[:5]}"
    assert len(ledger.completed) >= 100
    assert "Traceback" not in server.log_text()
    print(
        f"failover after the primary was {loss}: {len(ledger.enqueued)} enqueues, {len(ledger.leased)} leases "
        f"and {len(ledger.completed)} completions acknowledged, healed {healed_after:.2f}s after the promotion, codes {dict(ledger.codes)}"
    )
