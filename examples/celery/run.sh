#!/usr/bin/env bash
# Starts the example's Celery worker, runs the producer, then stops the worker.
# Needs a running `queue-service serve` (QUEUE_TARGET, default localhost:50051) and RabbitMQ
# (CELERY_BROKER_URL, default amqp://guest:guest@localhost:5672//).
set -euo pipefail
cd "$(dirname "$0")"
queue="${EXAMPLE_QUEUE:-celery-example}"
worker_log="${WORKER_LOG:-${TMPDIR:-/tmp}/celery-example-worker.log}"

python -m celery -A tasks worker --queues "$queue" --hostname "$queue@%h" --concurrency 2 \
  --without-gossip --without-mingle --without-heartbeat --loglevel INFO >"$worker_log" 2>&1 &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT
echo "celery worker started (pid $worker, log $worker_log)"

python producer.py
