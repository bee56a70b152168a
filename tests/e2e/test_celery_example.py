"""examples/celery runs as the README says, against a real `queue-service serve` and the machine's RabbitMQ,
and prints the three jobs' final states."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.brokers import delete_queues, rabbitmq_url
from tests.reliability.processes import ServerProcess, clean_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_the_celery_example_prints_three_final_states(tmp_path):
    broker = rabbitmq_url()
    queue = f"celery-example-{uuid.uuid4().hex[:12]}"
    server = ServerProcess(f"sqlite:///{tmp_path / 'jobs.sqlite3'}", tmp_path / "server.log", args=("--migrate",))
    server.start()
    environment = clean_env(
        QUEUE_TARGET=server.target,
        CELERY_BROKER_URL=broker,
        EXAMPLE_QUEUE=queue,
        WORKER_LOG=str(tmp_path / "worker.log"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    try:
        run = subprocess.run(
            ["bash", "examples/celery/run.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
        )
    finally:
        server.stop()
        delete_queues(broker, [queue])
    worker_log = (tmp_path / "worker.log").read_text() if (tmp_path / "worker.log").exists() else ""
    assert run.returncode == 0, run.stdout + run.stderr + worker_log
    lines = run.stdout.splitlines()
    assert f"queue {queue}: max_retries=2, delays 0.5s then 1s" in lines
    finals = {line.split(":")[0]: line for line in lines if " after " in line}
    assert finals["charge (succeeds)"] == (
        'charge (succeeds): completed after 1 attempt(s), result {"charged": 4200, "order_id": "order-1001"}'
    )
    assert finals["sync_inventory (fails twice, then succeeds)"] == (
        'sync_inventory (fails twice, then succeeds): completed after 3 attempt(s), result {"sku": "SKU-42", "synced": true}'
    )
    receipt = finals["send_receipt (always fails)"]
    assert "dead_letter after 3 attempt(s), dead-letter entry " in receipt
    assert receipt.endswith("last error: TimeoutError: mail server timed out sending the receipt for order-1001")
