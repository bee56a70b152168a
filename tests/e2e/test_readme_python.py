"""Every Python block of the README runs as written against a real `queue-service serve`, on both backends.

A block may be marked as a fragment with `<!-- fragment -->` on the line before its fence; it is
then only compiled. The blocks of "Run on PostgreSQL" run in that walkthrough's own test
(tests/e2e/test_postgres_walkthrough.py). A block that runs a Worker until it is stopped is started,
given one job, and stopped with SIGTERM once that job completed, as Ctrl-C would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from jobqueue import JobClient, JobState

from tests.e2e.server_process import serve
from tests.reliability.processes import wait_for

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
FRAGMENT = "<!-- fragment -->"
OWN_TEST = {"Run on PostgreSQL"}


@dataclass(frozen=True)
class Block:
    section: str
    line: int
    code: str
    fragment: bool

    @property
    def runs_until_stopped(self) -> bool:
        return bool(re.search(r"\.run\(\)", self.code))


def python_blocks() -> list[Block]:
    blocks, section = [], ""
    lines = README.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.strip() == "```python":
            end = lines.index("```", index + 1)
            fragment = index > 0 and lines[index - 1].strip() == FRAGMENT
            blocks.append(Block(section, index + 1, "\n".join(lines[index + 1 : end]) + "\n", fragment))
            index = end
        index += 1
    return blocks


def runnable() -> list[Block]:
    return [block for block in python_blocks() if not block.fragment and block.section not in OWN_TEST]


def test_the_readme_has_python_examples_and_each_compiles():
    blocks = python_blocks()
    assert len(runnable()) >= 4
    for block in blocks:
        compile(block.code, f"README.md:{block.line}", "exec")
        if not block.fragment:
            # Runnable blocks import what they use: no name comes from an earlier block.
            assert "import " in block.code, f"README.md:{block.line} imports nothing"


def test_every_runnable_python_block_runs_as_written(database_url, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    with serve(database_url, tmp_path) as server:
        for number, block in enumerate(runnable()):
            script = tmp_path / f"readme_block_{number}.py"
            script.write_text(block.code.replace("localhost:50051", server.address))
            where = f"README.md:{block.line} ({block.section})"
            if block.runs_until_stopped:
                run_until_its_job_completed(script, env, tmp_path, server.address, where)
                continue
            result = subprocess.run(
                [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{where}:\n{result.stderr}\nserver log:\n{server.log()}"
            assert "Traceback" not in result.stderr, f"{where}:\n{result.stderr}"


def run_until_its_job_completed(script: Path, env: dict, cwd: Path, target: str, where: str) -> None:
    job_id = f"readme-{script.stem}"
    with JobClient(target, timeout=10) as client:
        client.enqueue("emails", "send", {"to": "a@example.com"}, job_id=job_id)
        process = subprocess.Popen(
            [sys.executable, str(script)], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(
                lambda: process.poll() is not None or client.get_job(job_id).job.state is JobState.COMPLETED,
                timeout=60,
                message=f"{where} to complete {job_id}",
            )
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # as Ctrl-C: finish, then stop
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, f"{where}:\n{stderr}"
        assert client.get_job(job_id).job.state is JobState.COMPLETED
    # The worker said what it did, on stderr, without any logging set-up in the block.
    assert f"job {job_id} (send) attempt 1 completed in " in stderr, f"{where}:\n{stderr}"
    assert "Traceback" not in stderr, f"{where}:\n{stderr}"
