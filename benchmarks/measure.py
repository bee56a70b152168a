"""Timing helpers: percentiles, and running a function from several threads at once."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_worker = threading.local()


def worker_slot() -> int:
    """The index of the `run_threads` worker calling, 0 outside one.

    Clients and floors key their connections by it, so the connections outlive one timed run: the
    warm-up opens them, and no timed call pays for opening one.
    """
    return getattr(_worker, "slot", 0)


class PerSlot(Generic[T]):
    """One `make()` per worker slot: made at the slot's first use (a warm-up's), kept for every later run.

    Two threads may share a slot (a thread outside `run_threads` is slot 0, as the caller is): only
    one of them makes its item, which both then use.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self.items: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        slot = worker_slot()
        item = self.items.get(slot)
        if item is None:
            with self._lock:
                item = self.items.get(slot)
                if item is None:
                    item = self.items[slot] = self._make()
        return item


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (fraction in 0..1)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Latencies:
    """Per-call latencies in milliseconds."""

    samples: int
    p50: float
    p99: float
    p999: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        ms = [value * 1000 for value in seconds]
        return cls(len(ms), percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 0.999))


def run_threads(count: int, work: Callable[[int], None]) -> float:
    """Run work(0..count-1) on `count` threads started together; the wall time in seconds.

    The first exception of any thread is raised here, after all have stopped.
    """
    errors: list[BaseException] = []
    start = threading.Barrier(count + 1)

    def target(index: int) -> None:
        _worker.slot = index
        start.wait()
        try:
            work(index)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=target, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def timed_calls(count: int, concurrency: int, call: Callable[[int], None]) -> list[float]:
    """Make `count` calls, call(i) for i in 0..count-1, from `concurrency` threads; each call's seconds."""
    samples: list[float] = []
    lock = threading.Lock()
    counter = iter(range(count))

    def work(_thread: int) -> None:
        local = []
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            began = time.perf_counter()
            call(index)
            local.append(time.perf_counter() - began)
        with lock:
            samples.extend(local)

    run_threads(concurrency, work)
    return samples


# Turns of each call in `interleaved_calls`.
INTERLEAVED_ROUNDS = 4


def interleaved_calls(
    count: int, concurrency: int, calls: dict[str, Callable[[int], None]], rounds: int = INTERLEAVED_ROUNDS
) -> dict[str, list[float]]:
    """`timed_calls` of each of `calls` over 0..count-1, in `rounds` turns (A, B, C, A, B, C, ...), so
    that a drift of the machine's speed during the run weighs on each alike; each call's seconds by name."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    bounds = [count * turn // rounds for turn in range(rounds + 1)]
    for low, high in zip(bounds, bounds[1:], strict=False):
        for name, call in calls.items():
            samples[name] += timed_calls(high - low, concurrency, lambda index, call=call, low=low: call(low + index))
    return samples
