"""queue-admin's parsing of durations and times, and its rendering of values."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest
from jobqueue import JobState, RetryPolicy, RetryRule

from queue_service.admin_cli import parse, render
from queue_service.admin_cli.parse import duration, durations, point_in_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("15s", 15),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1w", 604800),
        ("2H", 7200),
    ],
)
def test_durations(text, expected):
    assert duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30m", "-5s", "5s1", "nan", "inf", "-inf", "1e30", "99999999999d"])
def test_bad_durations(text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


@pytest.mark.parametrize("text", ["99999999999d", "1e30"])
def test_a_time_too_long_ago_is_a_usage_error(text):
    with pytest.raises(argparse.ArgumentTypeError):
        point_in_time(text, now=datetime(2026, 2, 14, 10, 0, tzinfo=UTC))


def test_duration_lists():
    assert durations("5s,15s,45s") == (timedelta(seconds=5), timedelta(seconds=15), timedelta(seconds=45))
    assert durations("") == ()


def test_points_in_time():
    now = datetime(2026, 2, 14, 10, 0, tzinfo=UTC)
    assert point_in_time("2h", now=now) == datetime(2026, 2, 14, 8, 0, tzinfo=UTC)
    assert point_in_time("2026-02-14T09:00:00Z") == datetime(2026, 2, 14, 9, 0, tzinfo=UTC)
    assert point_in_time("2026-02-14 09:00") == datetime(2026, 2, 14, 9, 0, tzinfo=UTC)
    assert point_in_time("2026-02-14T10:00:00+01:00") == datetime(2026, 2, 14, 9, 0, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        point_in_time("yesterday")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.25, "250ms"), (5, "5s"), (90, "1m30s"), (3600, "1h"), (93784, "1d2h3m4s")]
)
def test_spans(seconds, text):
    assert render.span(timedelta(seconds=seconds)) == text


def test_json_values():
    value = {
        "state": JobState.DEAD_LETTER,
        "at": datetime(2026, 2, 14, 10, 0, 5, tzinfo=UTC),
        "delay": timedelta(seconds=1.5),
        "policy": RetryPolicy(max_retries=3, retry_delays=(timedelta(seconds=5),)),
    }
    assert render.jsonable(value) == {
        "state": "dead_letter",
        "at": "2026-02-14T10:00:05Z",
        "delay": "1.5s",
        "policy": {
            "max_retries": 3,
            "retry_delays": ["5s"],
            "max_delay": None,
            "jitter": None,
            "rules": [],
            "max_retry_duration": None,
        },
    }


def test_tables_align_and_shorten():
    out = io.StringIO()
    render.table(["ID", "MESSAGE"], [["a", "x" * 100], ["bbb", None]], out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "ID   MESSAGE"
    assert lines[2].startswith("a    " + "x" * 47 + "…")
    assert lines[3] == "bbb  -"


def test_progress_bar_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = render.ProgressBar(out, width=10, interval=3600)
    bar.update(0, 4, "starting")
    bar.update(2, 4, "halfway")  # within the interval: not printed
    bar.update(4, 4, "done", final=True)
    assert out.getvalue().splitlines() == ["[..........] 0/4 starting", "[##########] 4/4 done"]


@pytest.mark.parametrize("seconds", [0, 0.25, 5, 90, 135, 3600, 5400, 93784, 86400 * 400])
def test_the_dashboard_writes_durations_as_queue_admin_does(seconds):
    from queue_service.dashboard.app import format_duration

    assert format_duration(timedelta(seconds=seconds)) == render.span(timedelta(seconds=seconds))


def test_a_duration_of_135_seconds_reads_2m15s_everywhere():
    from queue_service.dashboard.app import format_duration

    assert render.span(timedelta(seconds=135)) == format_duration(timedelta(seconds=135)) == "2m15s"
    assert format_duration(None) == "–" and render.span(None) == "-"


def test_retry_rules_from_the_command_line():
    rule = parse.retry_rule("TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m jitter=0.1")
    assert rule == RetryRule(
        "TimeoutError",
        max_retries=6,
        retry_delays=(timedelta(seconds=2), timedelta(seconds=4)),
        max_delay=timedelta(minutes=2),
        jitter=0.1,
    )
    assert parse.retry_rule("ValidationError retryable=false") == RetryRule("ValidationError", retryable=False)
    for bad in (
        "",
        "max_retries=3",
        "A retries=3",
        "A max_retries",
        "A max_retries=-1",
        "A retryable=no",
        "A jitter=x",
    ):
        with pytest.raises(argparse.ArgumentTypeError):
            parse.retry_rule(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="given twice"):
        parse.retry_rule("A max_retries=1 max_retries=2")


def test_job_data_must_be_a_json_object():
    assert parse.json_object('{"a": [1, 2]}') == {"a": [1, 2]}
    for bad in ("[1]", "3", "{", '"text"'):
        with pytest.raises(argparse.ArgumentTypeError):
            parse.json_object(bad)
