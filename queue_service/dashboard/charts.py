"""Activity charts as server-rendered SVG: no script, no external library, readable without colour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jobqueue.models import QueueActivity

# window -> (period, bucket width)
WINDOWS = {
    "hour": (timedelta(hours=1), timedelta(minutes=5)),
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(days=7), timedelta(hours=6)),
}

# (field, label, colour, dash): the dash patterns tell the series apart without colour.
SERIES = (
    ("completed_count", "Completed", "#1b7837", ""),
    ("failed_count", "Failed", "#b2182b", "6 3"),
    ("retried_count", "Retried", "#2c5c9e", "2 3"),
    ("dead_lettered_count", "Dead-lettered", "#6a3d9a", "10 3 2 3"),
    ("cancelled_count", "Cancelled", "#8c6d1f", "1 2"),
)

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 600, 160, 40, 24, 8


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    dash: str
    points: str
    total: int


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[Line]
    peak: int
    first_label: str
    last_label: str
    summary: str
    rows: list[tuple[str, list[int]]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM
    top: int = TOP


def activity_chart(activity: QueueActivity, *, title: str) -> Chart:
    buckets = activity.buckets
    peak = max([1] + [getattr(bucket, name) for bucket in buckets for name, *_ in SERIES])
    plot_width, plot_height = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_width / max(len(buckets) - 1, 1)
    lines = []
    for name, label, colour, dash in SERIES:
        values = [getattr(bucket, name) for bucket in buckets]
        points = " ".join(
            f"{LEFT + index * step:.1f},{TOP + plot_height - value / peak * plot_height:.1f}"
            for index, value in enumerate(values)
        )
        lines.append(Line(label, colour, dash, points, sum(values)))
    summary = ", ".join(f"{line.total} {line.label.lower()}" for line in lines)
    rows = [
        (bucket.start.strftime("%Y-%m-%d %H:%M"), [getattr(bucket, name) for name, *_ in SERIES]) for bucket in buckets
    ]
    return Chart(
        title=title,
        lines=lines,
        peak=peak,
        first_label=buckets[0].start.strftime("%d %b %H:%M") if buckets else "",
        last_label=buckets[-1].start.strftime("%d %b %H:%M") if buckets else "",
        summary=f"{title}: {summary}",
        rows=rows,
    )
