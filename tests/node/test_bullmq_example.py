"""The README's BullMQ example command, run as written against a real `queue-service serve` and Redis."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.e2e.server_process import serve
from tests.node_package import ROOT, npm_path, require_redis

pytestmark = pytest.mark.slow
MARKER = "<!-- bullmq-example-command -->"


def readme_example_command() -> str:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(MARKER)
    assert lines[start + 1] == "```bash", "the example command must follow its marker in a bash block"
    return lines[start + 2]


@pytest.mark.timeout(600)
def test_bullmq_example_prints_three_final_states(tmp_path):
    npm_path()
    require_redis()
    command = readme_example_command()
    with serve(f"sqlite:///{tmp_path / 'jobs.sqlite3'}", tmp_path) as server:
        completed = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=ROOT,
            env={**os.environ, "QUEUE_TARGET": server.address},
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
        )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-20000:]
    final = output[output.index("final states:") :]
    assert re.search(r"^  succeeds: COMPLETED after 1 run, ", final, re.MULTILINE), final
    assert re.search(r"^  flaky: COMPLETED after 3 runs, .*\(BullMQ: completed\)$", final, re.MULTILINE), final
    assert re.search(
        r"^  broken: DEAD_LETTER after 3 runs, dead-letter entry [0-9a-f-]{36}, last error: mail server rejected "
        r"the message \(BullMQ: failed\)$",
        final,
        re.MULTILINE,
    ), final
