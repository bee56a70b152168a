"""The README's configuration reference names every flag and every QUEUE_* environment variable."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from queue_service.admin_cli.main import build_parser as admin_parser
from queue_service.cli import build_parser as service_parser

ROOT = Path(__file__).resolve().parents[2]
# QUEUE_* strings in the source that are not environment variables.
NOT_VARIABLES = {"QUEUE_ERROR"}  # the default google.rpc.ErrorInfo reason of domain errors


def reference_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Configuration reference")
    end = readme.index("\n## ", start)
    return readme[start:end]


def options(parser: argparse.ArgumentParser, *, commands: bool) -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if commands:
                for command in action.choices.values():
                    found |= options(command, commands=True)
        else:
            found |= {option for option in action.option_strings if option.startswith("--") and option != "--help"}
    return found


def test_every_flag_is_in_the_reference():
    table = reference_table()
    flags = options(service_parser(), commands=True) | options(admin_parser(), commands=False)
    missing = sorted(flag for flag in flags if f"`{flag}`" not in table)
    assert not missing, f"add these flags to the README's configuration reference: {missing}"


def test_every_environment_variable_is_in_the_reference():
    table = reference_table()
    sources = [
        *(ROOT / "queue_service").rglob("*.py"),
        *(ROOT / "clients" / "jobqueue").rglob("*.py"),
        ROOT / "tests" / "conftest.py",
    ]
    variables = set()
    for path in sources:
        variables |= set(re.findall(r"""["'](QUEUE_[A-Z0-9_]+)["']""", path.read_text()))
    variables -= NOT_VARIABLES
    assert {"QUEUE_PORT", "QUEUE_METRICS_PORT", "QUEUE_ADMIN_TOKEN"} <= variables
    missing = sorted(name for name in variables if f"`{name}`" not in table)
    assert not missing, f"add these variables to the README's configuration reference: {missing}"
