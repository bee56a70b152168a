"""The tree passes ruff's lint rules and is laid out as `ruff format` lays it out (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_lint_rules_find_nothing():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_project_settings_catch_an_unused_import_and_a_bad_layout(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nx=( 1,2 )\n")
    config = str(ROOT / "pyproject.toml")
    lint = ruff("check", "--config", config, str(sample), cwd=tmp_path)
    assert lint.returncode == 1 and "F401" in lint.stdout
    layout = ruff("format", "--check", "--config", config, str(sample), cwd=tmp_path)
    assert layout.returncode == 1 and "sample.py" in layout.stdout
