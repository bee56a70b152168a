"""The client library ships py.typed, so its hand-written modules must pass a strict type check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"


def test_client_library_passes_mypy_strict(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(CLIENTS / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "jobqueue",
        ],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
