/**
 * The producer: sets the queue's retry policy (short delays, so this takes seconds), adds three
 * jobs, waits until the service holds each one's final state, and prints it.
 */

import { Queue } from "bullmq";
import { AdminClient, durationFromMs, Job_State, JobClient } from "jobqueue-client";
import { TRACKED_JOB_OPTIONS } from "jobqueue-client/bullmq";

import { adminToken, connection, prefix, queueName, target, workerToken } from "./settings.js";

const FINAL = new Set([Job_State.STATE_COMPLETED, Job_State.STATE_DEAD_LETTER]);
const TIMEOUT_MS = 60_000;

const admin = new AdminClient({ target, token: adminToken });
const client = new JobClient({ target, token: workerToken });
const queue = new Queue(queueName, { connection, prefix });

try {
  // Two retries, after 0.5 s and 1 s: the third failed run goes to the dead-letter queue.
  await admin.updateQueuePolicy({
    queueName,
    allowMissing: true,
    retryPolicy: { maxRetries: 2, retryDelays: [durationFromMs(500), durationFromMs(1000)], jitter: 0 },
  });
  const jobs = [];
  for (const name of ["succeeds", "flaky", "broken"]) {
    jobs.push(await queue.add(name, { to: `${name}@example.com` }, TRACKED_JOB_OPTIONS));
  }
  console.log(`producer: added ${jobs.map((job) => job.name).join(", ")} to ${queueName}`);

  const deadline = Date.now() + TIMEOUT_MS;
  const finals = new Map();
  while (finals.size < jobs.length) {
    if (Date.now() > deadline) throw new Error(`not all jobs were final within ${TIMEOUT_MS / 1000} s`);
    for (const job of jobs) {
      if (finals.has(job.name)) continue;
      try {
        const details = await client.getJob(`${queueName}:${job.id}`);
        if (FINAL.has(details.job.state)) finals.set(job.name, details);
      } catch (error) {
        if (error.name !== "NotFound") throw error; // not started yet
      }
    }
    await new Promise((done) => setTimeout(done, 200));
  }

  console.log("final states:");
  for (const job of jobs) {
    const { job: serviceJob, errorHistory } = finals.get(job.name);
    const state = Job_State[serviceJob.state].replace("STATE_", "");
    const bullState = await (await queue.getJob(job.id)).getState();
    const runs = `${serviceJob.attemptNumber} run${serviceJob.attemptNumber === 1 ? "" : "s"}`;
    const extra =
      state === "DEAD_LETTER"
        ? `, dead-letter entry ${serviceJob.deadLetterId}, last error: ${errorHistory.at(-1).message}`
        : `, result ${JSON.stringify(serviceJob.result)}`;
    console.log(`  ${job.name}: ${state} after ${runs}${extra} (BullMQ: ${bullState})`);
  }
} finally {
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  admin.close();
  client.close();
}
