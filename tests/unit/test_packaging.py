"""The wheel ships every package of the service: a package left out of pyproject.toml works in an
editable checkout and fails only once installed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_service_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "queue_service").rglob("__init__.py")}
    assert found, "no packages found under queue_service/"
    assert found - listed == set(), "packages missing from [tool.setuptools] packages"
