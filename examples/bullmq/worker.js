/** The worker: a plain BullMQ Worker whose processor the queue service tracks. */

import { Worker } from "bullmq";
import { JobClient } from "jobqueue-client";
import { BullMQTracker } from "jobqueue-client/bullmq";

import { connection, prefix, queueName, target, workerToken } from "./settings.js";

const client = new JobClient({ target, token: workerToken });
const tracker = new BullMQTracker(client);

async function sendEmail(job) {
  if (job.name === "broken") throw new Error("mail server rejected the message");
  if (job.name === "flaky" && job.attemptsMade < 2) throw new Error(`connection reset (run ${job.attemptsMade + 1})`);
  return { messageId: `${job.name}-${job.id}` };
}

const worker = new Worker(queueName, tracker.processor(sendEmail), {
  connection,
  prefix,
  settings: tracker.workerSettings(),
});
worker.on("failed", (job, error) => console.log(`worker: ${job.name} run ${job.attemptsMade} failed: ${error.message}`));
worker.on("completed", (job) => console.log(`worker: ${job.name} completed`));

async function stop() {
  await worker.close();
  client.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
await worker.waitUntilReady();
console.log(`worker: listening on BullMQ queue ${queueName}`);
