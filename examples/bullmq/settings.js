/** What the producer and the worker share: where the service and Redis are, and the queue's name. */

export const target = process.env.QUEUE_TARGET || "localhost:50051";
export const workerToken = process.env.QUEUE_WORKER_TOKEN || process.env.QUEUE_TOKEN || undefined;
export const adminToken = process.env.QUEUE_ADMIN_TOKEN || process.env.QUEUE_TOKEN || undefined;

const redisUrl = new URL(process.env.REDIS_URL || "redis://127.0.0.1:6379");
export const connection = {
  host: redisUrl.hostname,
  port: Number(redisUrl.port || 6379),
  maxRetriesPerRequest: null,
};

// A fresh queue per run, so that BullMQ's job ids never meet a run before them in the service.
export const queueName = process.env.EXAMPLE_QUEUE || `bullmq-example-${Date.now().toString(36)}`;
export const prefix = "jobqueue-example";
