"""Figures, the markdown table and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    scenario: str
    backend: str
    name: str
    unit: str  # "jobs/s" (higher is better) or "ms" (lower is better)
    service: float
    floor: float | None = None  # the figure measured for the reference named below
    target: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reference: str = "floor"  # the raw-SQL floor, or another program doing the same work: "pgqueuer", "empty gRPC"

    @property
    def ratio(self) -> float | None:
        """service / reference: for jobs/s the share of the reference reached, for ms how many times slower."""
        if self.floor is None or not self.floor or math.isnan(self.floor):
            return None
        return self.service / self.floor

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def _number(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "MB" or unit == "%":
        return f"{value:,.1f}"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _reference(figure: Figure) -> str:
    if figure.floor is None:
        return "–"
    return f"{figure.reference} {_number(figure.floor, figure.unit)}"


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def markdown(figures: list[Figure]) -> str:
    lines = [
        "| scenario | backend | figure | service | reference | service / reference | goal | met |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for figure in figures:
        ratio = figure.ratio
        met = "" if figure.met is None else ("yes" if figure.met else "**no**")
        lines.append(
            f"| {figure.scenario} | {figure.backend} | {figure.name} | {_number(figure.service, figure.unit)} {figure.unit} "
            f"| {_reference(figure)} | {'' if ratio is None else f'{ratio:.2f}×'} | {figure.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }


def write_json(path: Path, figures: list[Figure], settings: dict[str, Any], started: dict[str, Any]) -> None:
    document = {
        "machine_at_start": started,
        "machine_at_end": machine(),
        "settings": settings,
        "figures": [figure.to_json() for figure in figures],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
