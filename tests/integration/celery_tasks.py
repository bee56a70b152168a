"""Celery tasks on TrackedTask for tests/integration/test_celery.py, run by a real `celery worker`.

The worker process reads its broker, queue and service from the environment the test sets.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from celery import Celery
from jobqueue import NonRetryableError
from jobqueue.integrations.celery import TrackedTask

app = Celery("jobqueue_celery_tests", broker=os.environ.get("TEST_CELERY_BROKER", "memory://"))
app.conf.update(
    task_default_queue=os.environ.get("TEST_CELERY_QUEUE", "celery"),
    jobqueue_target=os.environ.get("TEST_JOBQUEUE_TARGET", "127.0.0.1:50051"),
    jobqueue_timeout=5,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_enable_remote_control=False,
)
# Where tasks leave marks for the test to wait on.
MARKS = Path(os.environ.get("TEST_CELERY_MARKS", "."))


class InvalidOrder(Exception):
    """Retrying cannot fix it: mapped to non_retryable."""


class FastRetries(TrackedTask):
    unreachable_retry_delay = 0.5
    heartbeat_interval = timedelta(seconds=0.3)
    heartbeat_lease = timedelta(seconds=10)


@app.task(base=FastRetries, bind=True)
def double(self, value):
    return {"doubled": value * 2, "attempt": self.request.retries + 1}


@app.task(base=FastRetries, bind=True)
def flaky(self, failures):
    if self.request.retries < failures:
        raise ConnectionError(f"upstream refused run {self.request.retries + 1}")
    return "done"


@app.task(base=FastRetries)
def always_fails():
    raise TimeoutError("the payment gateway timed out")


@app.task(base=FastRetries, non_retryable_errors=(InvalidOrder,))
def validate(order):
    raise InvalidOrder(f"order {order} has no items")


@app.task(base=FastRetries)
def refuse():
    raise NonRetryableError("the recipient does not exist")


@app.task(base=FastRetries, bind=True)
def wait_for_mark(self, name):
    """Leave `name`.started, then wait (up to 30 s) for the test to leave `name`.go."""
    (MARKS / f"{name}.started.{self.request.retries}").touch()
    deadline = time.monotonic() + 30
    while not (MARKS / f"{name}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"runs": self.request.retries + 1}
