"""The benchmark harness still runs: every scenario at a tiny size, on SQLite and PostgreSQL.

Only that it works end to end and reports a service figure with its floor and references (the
empty-gRPC ceiling; pgqueuer on PostgreSQL, from the `bench` extra that the test lock installs);
speed is judged by `python -m benchmarks` at full size, never here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS
from tests.conftest import postgres_admin_url, skip_or_fail_without_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_every_scenario_runs_at_tiny_size(backend, tmp_path):
    args = [
        sys.executable,
        "-m",
        "benchmarks",
        "--tiny",
        "--workers",
        "1",
        "--backend",
        backend,
        "--output",
        str(tmp_path / "results.json"),
    ]
    if backend == "postgresql":
        url = postgres_admin_url()
        if not url:
            skip_or_fail_without_postgres()
        args += ["--postgres-url", url]
    completed = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "| scenario | backend | figure |" in completed.stdout

    figures = json.loads((tmp_path / "results.json").read_text())["figures"]
    scenarios = {figure["scenario"].split()[0] for figure in figures}
    assert scenarios == {"1", "2", "3", "4", "6"} | ({"5"} if "sweep" in SCENARIOS else set())
    for figure in figures:
        assert figure["backend"] == backend
        if "during the sweep" in figure["name"] and math.isnan(figure["service"]):
            continue  # a tiny sweep may end before a single lease call fits inside it
        # The CPU per job rows (each says how busy the cores were: the service's and floor's, or the
        # empty servers') and the bounds made of them.
        if "cores busy" in figure["name"] or "the most a gRPC service" in figure["name"]:
            continue  # a tiny phase may end within one tick of the kernel's CPU clock: nothing to count
        assert figure["service"] > 0 or figure["unit"] == "%", figure
        if figure["floor"] is not None:
            assert figure["floor"] > 0 and figure["ratio"] > 0, figure
    # Every scenario measures the service against its floor, except memory, which has none.
    with_floor = {figure["scenario"].split()[0] for figure in figures if figure["floor"] is not None}
    assert with_floor == scenarios - {"6"}
    references = {
        (figure["scenario"].split()[0], figure["reference"])
        for figure in figures
        if figure["floor"] is not None and figure["reference"] != "floor"
    }
    assert references == {("1", "empty gRPC"), ("2", "empty gRPC"), ("2", "3-call loop"), ("3", "empty gRPC")} | (
        {("1", "pgqueuer")} if backend == "postgresql" else set()
    )
    # The batched and one-per-call scenarios price each phase in machine CPU per job, and the bound
    # those prices set on each goal.
    for scenario, phase in (("1 batched", "enqueue"), ("1 batched", "drain"), ("2 one per RPC", "one per call")):
        names = [figure["name"] for figure in figures if figure["scenario"] == scenario]
        assert any(name.startswith(f"{phase}: machine CPU per job") for name in names), names
        assert any(name.startswith(f"{phase}: the most a gRPC service can reach") for name in names), names
    single_bounds = {
        figure["reference"]
        for figure in figures
        if figure["scenario"] == "2 one per RPC" and "the most a gRPC service" in figure["name"]
    }
    assert single_bounds == ({"floor", "empty gRPC"} if backend == "postgresql" else {"floor"}), single_bounds
    for figure in figures:
        if figure["reference"] != "floor" and "×" in figure["target"]:
            assert figure["reference"] in figure["target"], figure  # a goal relative to a reference names it
    # Scenario 2's Worker fleet: its rate beside the 3-call loop's, and its acknowledgement delays.
    fleet = [figure for figure in figures if figure["name"].startswith("Worker fleet: ")]
    assert [(figure["unit"], figure["floor"] is not None and figure["reference"]) for figure in fleet] == [
        ("jobs/s", "3-call loop"),
        ("ms", "3-call loop"),
        ("ms", "3-call loop"),
        ("ms", False),
        ("ms", False),
        ("ms", False),
    ], fleet
    assert "ack delay p50" in fleet[1]["name"] and "ack delay p99" in fleet[2]["name"], fleet
    assert fleet[0]["target"] == "≥ 0.9× 3-call loop" and fleet[2]["target"] == "≤ 5 ms", fleet
    # The bound: the empty servers' TrackCompletion p99, judged against the same goal.
    assert "the least ack delay p99" in fleet[3]["name"] and fleet[3]["target"] == "≤ 5 ms", fleet
    assert fleet[3]["details"]["empty_grpc_track_completion_ms"]["p99"] == fleet[3]["service"] > 0, fleet
    # And the floor's own completion p99 in its loop: the least a commit takes at that concurrency.
    assert "the floor's own completion p99" in fleet[4]["name"] and fleet[4]["target"] == "≤ 5 ms", fleet
    assert fleet[4]["details"]["floor_complete_ms"]["p99"] == fleet[4]["service"] > 0, fleet
    assert "the Worker's own share" in fleet[5]["name"], fleet
    assert all(figure["details"]["samples"] > 0 for figure in fleet[1:]), fleet
    assert "Load average (1, 5, 15 min): " in completed.stdout
    assert "| service / reference | goal |" in completed.stdout
