"""The timing helpers: timed calls reuse the connections their warm-up opened, so a timed call never
pays for opening one; interleaved calls take turns."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from benchmarks.measure import PerSlot, interleaved_calls, run_threads, timed_calls, worker_slot
from benchmarks.scenarios import Client


@pytest.fixture
def target():
    """A real gRPC server on a free loopback port: channels to it become ready."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_each_worker_of_a_run_has_its_own_slot_and_the_caller_has_slot_zero():
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def work(index: int) -> None:
        with lock:
            seen[index] = worker_slot()

    run_threads(4, work)
    assert seen == {0: 0, 1: 1, 2: 2, 3: 3}
    assert worker_slot() == 0


def test_a_later_run_reuses_the_channels_a_warm_up_opened(target):
    client = Client(target)
    try:
        timed_calls(8, 4, lambda _i: client.jobs)  # the warm-up opens slots 0..3
        warmed = dict(client.channels.items)
        assert sorted(warmed) == [0, 1, 2, 3]
        timed_calls(8, 1, lambda _i: client.jobs)
        client.admin  # noqa: B018 - the calling thread is slot 0 too
        timed_calls(8, 4, lambda _i: client.admin)
        assert client.channels.items == warmed
    finally:
        client.close()


def test_threads_sharing_a_slot_share_one_item_made_once():
    made: list[int] = []
    barrier = threading.Barrier(8)

    def make() -> int:
        time.sleep(0.05)  # long enough for every other thread to ask for the slot meanwhile
        made.append(worker_slot())
        return len(made)

    items = PerSlot(make)
    got: list[int] = []

    def use(_index: int) -> None:
        barrier.wait()  # all at once, each outside run_threads: every one is slot 0
        got.append(items.get())

    threads = [threading.Thread(target=use, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [0] and got == [1] * 8
    run_threads(3, lambda _index: items.get())
    # Slots 1 and 2 get an item each; slot 0 keeps its own.
    assert sorted(made) == [0, 1, 2] and sorted(items.items.values()) == [1, 2, 3] and items.items[0] == 1


def test_interleaved_calls_take_turns_and_cover_every_index_once():
    order: list[tuple[str, int]] = []

    def recorder(name: str):
        return lambda index: order.append((name, index))

    samples = interleaved_calls(6, 1, {"floor": recorder("floor"), "service": recorder("service")}, rounds=3)
    assert order == [
        ("floor", 0),
        ("floor", 1),
        ("service", 0),
        ("service", 1),
        ("floor", 2),
        ("floor", 3),
        ("service", 2),
        ("service", 3),
        ("floor", 4),
        ("floor", 5),
        ("service", 4),
        ("service", 5),
    ]
    assert {name: len(seconds) for name, seconds in samples.items()} == {"floor": 6, "service": 6}
