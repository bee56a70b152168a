"""The example's Celery worker side: three tasks on TrackedTask, each run reported to the job service.

Settings come from the environment: CELERY_BROKER_URL (default: the local RabbitMQ),
QUEUE_TARGET (default localhost:50051), QUEUE_TOKEN if the server has tokens, and
EXAMPLE_QUEUE, the Celery queue and the service's queue (default celery-example).
"""

from __future__ import annotations

import os

from celery import Celery
from jobqueue.integrations.celery import TrackedTask

QUEUE = os.environ.get("EXAMPLE_QUEUE", "celery-example")

app = Celery("celery_example", broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//"))
app.conf.update(
    task_default_queue=QUEUE,
    jobqueue_target=os.environ.get("QUEUE_TARGET", "localhost:50051"),
    jobqueue_token=os.environ.get("QUEUE_TOKEN"),
    broker_connection_retry_on_startup=True,
)


class PaymentDeclined(Exception):
    """Retrying cannot help: straight to the dead-letter queue."""


@app.task(base=TrackedTask)
def charge(order_id: str, amount: int) -> dict:
    return {"order_id": order_id, "charged": amount}


@app.task(base=TrackedTask, bind=True)
def sync_inventory(self, sku: str) -> dict:
    # The first two runs meet a flaky upstream; the service retries them after its delays.
    if self.request.retries < 2:
        raise ConnectionError(f"inventory service reset the connection (run {self.request.retries + 1})")
    return {"sku": sku, "synced": True}


@app.task(base=TrackedTask, non_retryable_errors=(PaymentDeclined,))
def send_receipt(order_id: str) -> None:
    # Always fails: retried by the policy, then moved to the dead-letter queue.
    raise TimeoutError(f"mail server timed out sending the receipt for {order_id}")
