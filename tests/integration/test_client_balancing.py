"""Several targets: both clients spread calls round-robin over the replicas and skip one whose
grpc.health.v1 status is not SERVING, through gRPC's own service config (no balancing of ours)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2
from jobqueue import JobClient, NotFound, aio
from jobqueue.connection import channel_target

from queue_service.api.server import QueueServer
from tests.conftest import make_config

CALLS = 60


@pytest.fixture
def replicas(database_url, clock) -> Iterator[list[QueueServer]]:
    """Three servers on one database, in this process."""
    servers = [QueueServer(make_config(database_url), clock=clock).start() for _ in range(3)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop(0)


def get_job_calls(server: QueueServer) -> float:
    labels = {
        "grpc_service": "jobqueue.v1.JobService",
        "grpc_method": "GetJob",
        "grpc_type": "unary",
        "grpc_code": "NOT_FOUND",
    }
    return server.metrics_registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


def targets(replicas: list[QueueServer]) -> list[str]:
    # One by host name, to show names are resolved too.
    return [f"localhost:{replicas[0].port}", *(f"127.0.0.1:{server.port}" for server in replicas[1:])]


def ask(client: JobClient, times: int) -> None:
    for n in range(times):
        with pytest.raises(NotFound):
            client.get_job(f"absent-{n}")


def test_calls_are_spread_over_every_replica(replicas):
    with JobClient(targets(replicas), timeout=10) as client:
        ask(client, CALLS)
    counts = [get_job_calls(server) for server in replicas]
    assert sum(counts) == CALLS
    # round_robin: each replica gets its turn (a pick_first channel would send them all to one).
    assert all(count >= CALLS / 3 - 2 for count in counts), counts


def test_a_replica_that_is_not_serving_gets_no_calls(replicas):
    draining = replicas[1]
    draining.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    with JobClient(targets(replicas), timeout=10) as client:
        ask(client, CALLS)
    assert get_job_calls(draining) == 0
    assert sum(get_job_calls(server) for server in replicas) == CALLS

    draining.health.set("", health_pb2.HealthCheckResponse.SERVING)
    before = get_job_calls(draining)
    with JobClient(targets(replicas), timeout=10) as client:
        ask(client, CALLS)
    assert get_job_calls(draining) > before


def test_the_asyncio_client_balances_the_same_way(replicas):
    replicas[2].health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    async def scenario() -> None:
        async with aio.JobClient(targets(replicas), timeout=10) as client:
            for n in range(CALLS):
                with pytest.raises(NotFound):
                    await client.get_job(f"absent-{n}")

    asyncio.run(scenario())
    counts = [get_job_calls(server) for server in replicas]
    assert counts[2] == 0 and counts[0] > 0 and counts[1] > 0 and sum(counts) == CALLS


def test_targets_become_one_address_list():
    assert channel_target("dns:///jobs.internal:50051") == "dns:///jobs.internal:50051"
    assert channel_target(["10.0.0.1:50051"]) == "10.0.0.1:50051"
    assert (
        channel_target(["10.0.0.1:50051", "10.0.0.2:50052", "10.0.0.1:50051"]) == "ipv4:10.0.0.1:50051,10.0.0.2:50052"
    )
    assert channel_target(["[::1]:1", "[fe80::1]:2"]) == "ipv6:[::1]:1,[fe80::1]:2"
    with pytest.raises(ValueError, match="port"):
        channel_target(["10.0.0.1", "10.0.0.2:1"])
    with pytest.raises(ValueError, match="mix"):
        channel_target(["10.0.0.1:1", "[::1]:2"])
    with pytest.raises(ValueError, match="at least one"):
        channel_target([])
