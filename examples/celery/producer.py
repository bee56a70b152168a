"""The example's producer: sets a queue policy with short delays, sends three tasks to Celery, waits
until the job service says each is final, and prints each job's final state.

Run it with the worker through run.sh; the settings are those of tasks.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

from jobqueue import AdminClient, JobClient, JobState, NotFound, RetryPolicy
from tasks import QUEUE, charge, send_receipt, sync_inventory

TARGET = os.environ.get("QUEUE_TARGET", "localhost:50051")
TOKEN = os.environ.get("QUEUE_TOKEN")
# Two retries, half a second then one second apart: the example is over in seconds.
POLICY = RetryPolicy(max_retries=2, retry_delays=(timedelta(seconds=0.5), timedelta(seconds=1)), jitter=0.0)
FINAL = (JobState.COMPLETED, JobState.DEAD_LETTER)
TIMEOUT_SECONDS = 120


def main() -> int:
    with AdminClient(TARGET, token=TOKEN, timeout=10) as admin:
        admin.update_queue_policy(QUEUE, POLICY, allow_missing=True)
    print(f"queue {QUEUE}: max_retries=2, delays 0.5s then 1s")

    sent = {
        "charge (succeeds)": charge.apply_async(("order-1001", 4200), queue=QUEUE).id,
        "sync_inventory (fails twice, then succeeds)": sync_inventory.apply_async(("SKU-42",), queue=QUEUE).id,
        "send_receipt (always fails)": send_receipt.apply_async(("order-1001",), queue=QUEUE).id,
    }
    with JobClient(TARGET, token=TOKEN, timeout=10) as client:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        final = {}
        while len(final) < len(sent):
            if time.monotonic() > deadline:
                print(f"not final after {TIMEOUT_SECONDS}s: {sorted(set(sent) - set(final))}", file=sys.stderr)
                return 1
            for label, job_id in sent.items():
                if label in final:
                    continue
                try:
                    details = client.get_job(job_id)
                except NotFound:  # the worker has not started it yet
                    continue
                if details.job.state in FINAL:
                    final[label] = details
            time.sleep(0.2)

    for label, details in final.items():
        job = details.job
        line = f"{label}: {job.state.value} after {job.attempt_number} attempt(s)"
        if job.state is JobState.COMPLETED:
            line += f", result {json.dumps(job.result, sort_keys=True)}"
        else:
            line += (
                f", dead-letter entry {job.dead_letter_id}, last error: {job.last_error.type}: {job.last_error.message}"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
