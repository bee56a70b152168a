"""The README reads right for someone following it top to bottom: names defined before use, one
queue name in the examples, one explanation of the original design's routes, one benchmark table."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# How the examples name a queue: JSON requests, queue-admin arguments, Python calls.
QUEUE_NAME_PATTERNS = (
    r'"queue_name":\s*"([^"]+)"',
    r'"queue_names":\s*\["([^"]+)"',
    r"queue-admin queues (?:pause|resume|clean|policy|show) ([\w.-]+)",
    r'queue_name="([^"]+)"',
    r'\.(?:enqueue|lease)\(\s*"([^"]+)"',
    r'JobRequest\("([^"]+)"',
    r'Worker\(client, \["([^"]+)"\]',
    r'Worker\(client, "([^"]+)"',
)


def text() -> str:
    return README.read_text()


def section(name: str) -> str:
    return text().split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]


def prose() -> str:
    """The README without its code blocks."""
    return re.sub(r"```.*?```", "", text(), flags=re.S)


def test_queue_admin_token_is_defined_before_it_is_first_used():
    readme = text()
    defined = readme.index("export QUEUE_ADMIN_TOKEN=")
    assert defined < readme.index("$QUEUE_ADMIN_TOKEN")
    assert defined < readme.index("$QUEUE_TOKEN")


def test_the_examples_use_one_queue_name():
    names = {name for pattern in QUEUE_NAME_PATTERNS for name in re.findall(pattern, text())}
    assert names == {"emails"}


def test_the_original_design_routes_are_explained_once_and_not_used_as_names():
    assert len(re.findall(r"/api/queue-admin", text())) == 1
    assert "the seed" not in prose().lower()


def test_the_performance_section_has_one_table_and_no_stray_heading():
    performance = section("Performance")
    assert performance.count("| scenario | backend | figure |") == 1
    assert re.findall(r"^# .*", prose(), flags=re.M) == ["# queue-service"], "a second level-one heading"
    # It leads with what to expect, before how it was measured.
    assert performance.index("What to expect") < performance.index("python -m benchmarks")
