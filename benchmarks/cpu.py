"""The machine's CPU time spent in each timed phase: what shows that a throughput goal is past what
this machine can give.

Every process of a phase (client threads, server, PostgreSQL) runs on the same cores, so the CPU
time the whole machine spent per job is that phase's cost. A service has to do at least the work
of the empty-gRPC ceiling (the same calls and messages) and of the raw-SQL floor (the same
statements), so at best it needs their two costs added: `cores / (ceiling + floor)` jobs a second.
When that bound is below a goal, no service doing those calls and statements reaches the goal here;
with more cores the bound grows with them, and its ratio to the floor stays the same.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent working since boot (Linux /proc/stat); 0 elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    # Steal (time the hypervisor gave to others) is not this machine's work; guest time is within user.
    return (user + nice + system + irq + softirq) / TICKS_PER_SECOND


class CpuMeter:
    """The machine's busy CPU seconds and the wall seconds of each labelled phase, summed over rounds."""

    def __init__(self, busy: Callable[[], float] = machine_busy_seconds) -> None:
        self._busy = busy
        self.busy: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    @contextmanager
    def measure(self, label: str) -> Iterator[None]:
        busy, began = self._busy(), time.perf_counter()
        try:
            yield
        finally:
            self.busy[label] += self._busy() - busy
            self.wall[label] += time.perf_counter() - began

    def per_job_ms(self, label: str, jobs: int) -> float:
        return self.busy[label] / jobs * 1000 if jobs else float("nan")

    def utilisation(self, label: str) -> float:
        """The share of all cores the phase kept busy (1.0: every core, all the time)."""
        wall = self.wall[label]
        return self.busy[label] / (wall * cores()) if wall else float("nan")


def bound_jobs_per_second(ceiling_ms: float, floor_ms: float, core_count: int | None = None) -> float:
    """The most jobs a second a service can reach here if it costs what the ceiling and the floor cost together."""
    total = ceiling_ms + floor_ms
    return (core_count or cores()) * 1000 / total if total > 0 else float("nan")
