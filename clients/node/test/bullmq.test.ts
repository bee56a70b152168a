/** BullMQ tracking with the real bullmq package on Redis and a real `queue-service serve`. */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { type Job as BullJob, type Processor, Queue, Worker } from "bullmq";
import {
  AdminClient,
  DeathReason,
  durationFromMs,
  durationToMs,
  FailedPrecondition,
  Job_State,
  JobClient,
  NonRetryableError,
  RetryAfterError,
} from "jobqueue-client";
import { BullMQTracker, TRACKED_JOB_OPTIONS, type TrackingEvent, type TrackingOptions } from "jobqueue-client/bullmq";

import {
  ADMIN_TOKEN,
  eventually,
  REDIS_URL,
  redisSkipReason,
  serve,
  type ServerProcess,
  sqliteBackend,
  WORKER_TOKEN,
} from "./support.js";

// Every run of this file keeps its Redis keys under its own prefix, removed at the end.
const PREFIX = `jobqueue-test-${process.pid}-${randomBytes(4).toString("hex")}`;
const redis = (() => {
  const url = new URL(REDIS_URL);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
})();

// Leaves `name` as "Error", as many error classes do: it is still reported by its class name.
class ValidationError extends Error {}

interface Harness {
  queue: Queue;
  worker: Worker;
  events: TrackingEvent[];
  /** Delays the backoffStrategy returned, in order. */
  delays: number[];
  serviceJobId(job: BullJob): string;
  /** The BullMQ job once it is completed, or failed for good. */
  final(job: BullJob): Promise<{ state: string; job: BullJob }>;
  close(): Promise<void>;
}

async function trackedWorker(
  target: string,
  queueName: string,
  processor: Processor,
  options: TrackingOptions = {},
): Promise<Harness> {
  const client = new JobClient({ target, token: WORKER_TOKEN, timeoutMs: 10_000 });
  const events: TrackingEvent[] = [];
  const delays: number[] = [];
  const tracker = new BullMQTracker(client, { ...options, onEvent: (event) => events.push(event) });
  const queue = new Queue(queueName, { connection: redis, prefix: PREFIX });
  const worker = new Worker(queueName, tracker.processor(processor), {
    connection: redis,
    prefix: PREFIX,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string, error?: Error) => {
        const delay = tracker.backoffStrategy(attemptsMade, type, error);
        delays.push(delay);
        return delay;
      },
    },
  });
  worker.on("error", (error) => events.push({ type: "service-unreachable", report: "start", job: undefined!, error }));
  await worker.waitUntilReady();
  return {
    queue,
    worker,
    events,
    delays,
    serviceJobId: (job) => `${queueName}:${job.id}`,
    async final(job) {
      return eventually(
        async () => {
          // The state first, then the job: a job read before its move to completed has no
          // return value yet, though a state read just after would say completed.
          const state = await queue.getJobState(job.id!);
          if (state !== "completed" && state !== "failed") return undefined;
          const current = (await queue.getJob(job.id!))!;
          if (state === "completed") return { state, job: current };
          // Failed for good: BullMQ will not run it again.
          if (current.finishedOn) return { state, job: current };
          return undefined;
        },
        40_000,
        `BullMQ job ${job.id} final`,
      );
    },
    async close() {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
      client.close();
    },
  };
}

const skip = await redisSkipReason();

describe("BullMQ tracking", { skip }, () => {
  const backend = sqliteBackend();
  let server: ServerProcess;
  let jobs: JobClient;
  let admin: AdminClient;
  let queueCounter = 0;
  const queueName = (what: string): string => `${PREFIX}-${what}-${++queueCounter}`;

  before(async () => {
    // A short stall timeout, so that heartbeats are due within a run of a second or two.
    server = await serve(await backend.create(), { args: ["--stall-timeout", "1.5s"] });
    jobs = new JobClient({ target: server.address, token: WORKER_TOKEN, timeoutMs: 10_000 });
    admin = new AdminClient({ target: server.address, token: ADMIN_TOKEN, timeoutMs: 10_000 });
  });

  after(async () => {
    jobs?.close();
    admin?.close();
    await server?.kill();
    await backend.dispose();
  });

  async function setPolicy(name: string, maxRetries: number, delaysMs: number[]): Promise<void> {
    await admin.updateQueuePolicy({
      queueName: name,
      allowMissing: true,
      retryPolicy: { maxRetries, retryDelays: delaysMs.map(durationFromMs), jitter: 0 },
    });
  }

  test("a successful run is reported with its result; a long run sends heartbeats", async () => {
    const name = queueName("success");
    const leases: number[] = [];
    const harness = await trackedWorker(server.address, name, async (job) => {
      // The lease TrackStart granted is 1.5 s; the run takes longer and must keep it alive.
      for (let i = 0; i < 4; i++) {
        await new Promise((done) => setTimeout(done, 600));
        const current = await jobs.getJob(`${name}:${job.id}`);
        leases.push(current.job!.leaseExpiresAt!.getTime());
      }
      return { sent: job.data.to };
    });
    try {
      const job = await harness.queue.add("send", { to: "a@example.com" }, TRACKED_JOB_OPTIONS);
      const final = await harness.final(job);
      assert.equal(final.state, "completed");
      assert.deepEqual(final.job.returnvalue, { sent: "a@example.com" });
      const service = await jobs.getJob(harness.serviceJobId(job));
      assert.equal(service.job!.state, Job_State.STATE_COMPLETED);
      assert.equal(service.job!.attemptNumber, 1);
      assert.equal(service.job!.queueName, name);
      assert.equal(service.job!.jobName, "send");
      assert.deepEqual(service.job!.jobData, { to: "a@example.com" });
      assert.deepEqual(service.job!.result, { sent: "a@example.com" });
      // Each heartbeat pushed the lease further: the last expiry is well past the first one.
      assert.ok(leases.at(-1)! - leases[0]! >= 1000, `leases ${leases}`);
      assert.deepEqual(harness.events, []);
    } finally {
      await harness.close();
    }
  });

  test("failed runs are retried after exactly the queue policy's delays", async () => {
    const name = queueName("retries");
    await setPolicy(name, 3, [400, 800]);
    const runStarts: number[] = [];
    const harness = await trackedWorker(server.address, name, async (job) => {
      runStarts.push(Date.now());
      if (job.attemptsMade < 2) throw new Error(`flaky run ${job.attemptsMade + 1}`);
      return "ok";
    });
    try {
      const job = await harness.queue.add("flaky", {}, TRACKED_JOB_OPTIONS);
      const final = await harness.final(job);
      assert.equal(final.state, "completed");
      assert.deepEqual(final.job.returnvalue, "ok");
      assert.deepEqual(harness.delays, [400, 800]);
      assert.equal(runStarts.length, 3);
      assert.ok(runStarts[1]! - runStarts[0]! >= 400, `runs at ${runStarts}`);
      assert.ok(runStarts[2]! - runStarts[1]! >= 800, `runs at ${runStarts}`);

      const service = await jobs.getJob(harness.serviceJobId(job));
      assert.equal(service.job!.state, Job_State.STATE_COMPLETED);
      assert.equal(service.job!.attemptNumber, 3);
      assert.deepEqual(service.job!.result, { value: "ok" });
      assert.deepEqual(service.retryLog.map((entry) => durationToMs(entry.retryDelay)), [400, 800]);
      assert.deepEqual(service.errorHistory.map((error) => error.message), ["flaky run 1", "flaky run 2"]);
      assert.equal(service.errorHistory[0]!.type, "Error");
      assert.match(service.errorHistory[0]!.details, /flaky run 1\n\s+at /);
    } finally {
      await harness.close();
    }
  });

  test("a RetryAfterError asks the service for its own delay, which BullMQ then keeps", async () => {
    const name = queueName("retry-after");
    await setPolicy(name, 3, [100]);
    const harness = await trackedWorker(server.address, name, async (job) => {
      if (job.attemptsMade === 0) throw new RetryAfterError("rate limited", 700);
      return "ok";
    });
    try {
      const job = await harness.queue.add("limited", {}, TRACKED_JOB_OPTIONS);
      assert.equal((await harness.final(job)).state, "completed");
      assert.deepEqual(harness.delays, [700]);
      const service = await jobs.getJob(harness.serviceJobId(job));
      assert.deepEqual(service.retryLog.map((entry) => durationToMs(entry.retryDelay)), [700]);
    } finally {
      await harness.close();
    }
  });

  test("after the last retry the job is dead-lettered and BullMQ stops", async () => {
    const name = queueName("dlq");
    await setPolicy(name, 2, [100, 100]);
    let runs = 0;
    const harness = await trackedWorker(server.address, name, async () => {
      runs += 1;
      throw new TypeError("always broken");
    });
    try {
      const job = await harness.queue.add("broken", {}, TRACKED_JOB_OPTIONS);
      const final = await harness.final(job);
      assert.equal(final.state, "failed");
      assert.equal(final.job.attemptsMade, 3);
      assert.equal(final.job.failedReason, "always broken");
      assert.equal(runs, 3);
      assert.deepEqual(harness.delays, [100, 100]); // the third failure is not retried
      const service = await jobs.getJob(harness.serviceJobId(job));
      assert.equal(service.job!.state, Job_State.STATE_DEAD_LETTER);
      assert.equal(service.retryLog.at(-1)!.deathReason, DeathReason.DEATH_REASON_RETRIES_EXHAUSTED);
      const entries = await admin.listDeadLetterJobs({ filter: { queueName: name } });
      assert.equal(entries.entries.length, 1);
      assert.equal(entries.entries[0]!.errorType, "TypeError");
    } finally {
      await harness.close();
    }
  });

  test("a non-retryable error class goes straight to the dead-letter queue", async () => {
    const name = queueName("non-retryable");
    await setPolicy(name, 5, [100]);
    const harness = await trackedWorker(
      server.address,
      name,
      async (job) => {
        if (job.name === "validate") throw new ValidationError("no 'to' in job data");
        throw new NonRetryableError("never works");
      },
      { nonRetryable: [ValidationError] },
    );
    try {
      for (const jobName of ["validate", "explicit"]) {
        const job = await harness.queue.add(jobName, {}, TRACKED_JOB_OPTIONS);
        const final = await harness.final(job);
        assert.equal(final.state, "failed");
        assert.equal(final.job.attemptsMade, 1);
        const service = await jobs.getJob(harness.serviceJobId(job));
        assert.equal(service.job!.state, Job_State.STATE_DEAD_LETTER);
        assert.equal(service.retryLog.at(-1)!.deathReason, DeathReason.DEATH_REASON_NON_RETRYABLE);
        assert.equal(service.errorHistory[0]!.type, jobName === "validate" ? "ValidationError" : "NonRetryableError");
      }
      assert.deepEqual(harness.delays, []);
    } finally {
      await harness.close();
    }
  });

  test("a job an operator dead-lettered between runs is not run again", async () => {
    const name = queueName("moved");
    await setPolicy(name, 5, [1500]);
    let runs = 0;
    const harness = await trackedWorker(server.address, name, async () => {
      runs += 1;
      throw new Error("first run fails");
    });
    try {
      const job = await harness.queue.add("moved", {}, TRACKED_JOB_OPTIONS);
      await eventually(() => harness.delays.length === 1, 20_000, "the first failure");
      await jobs.moveToDeadLetter({ jobId: harness.serviceJobId(job), reason: "operator gave up" });
      const final = await harness.final(job);
      assert.equal(final.state, "failed");
      assert.equal(runs, 1); // the start was refused, so the processor never ran again
      assert.match(final.job.failedReason, /refused to start this run/);
      assert.deepEqual(
        harness.events.map((event) => `${event.type} ${event.report}`),
        ["report-refused start"],
      );
    } finally {
      await harness.close();
    }
  });

  test("a refused stale report does not crash the worker", async () => {
    const name = queueName("stale");
    await setPolicy(name, 5, [100]);
    const harness = await trackedWorker(server.address, name, async (job) => {
      if (job.name !== "fine") {
        // Another worker starts the same job meanwhile: this run's attempt is no longer current.
        await jobs.trackStart({ jobId: `${name}:${job.id}`, workerId: "somebody-else" });
      }
      if (job.name === "stale-failure") throw new Error("failed late");
      return { done: job.name };
    });
    try {
      const staleSuccess = await harness.queue.add("stale-success", {}, TRACKED_JOB_OPTIONS);
      assert.equal((await harness.final(staleSuccess)).state, "completed");
      const staleFailure = await harness.queue.add("stale-failure", {}, TRACKED_JOB_OPTIONS);
      const failed = await harness.final(staleFailure);
      assert.equal(failed.state, "failed");
      assert.equal(failed.job.attemptsMade, 1); // refused: BullMQ does not run it again on its own

      const refused = harness.events.filter((event) => event.type === "report-refused");
      assert.deepEqual(
        refused.map((event) => event.report),
        ["completion", "failure"],
      );
      for (const event of refused) {
        assert.ok(event.error instanceof FailedPrecondition);
        assert.equal(event.error.reason, "STALE_ATTEMPT");
      }
      // The current run (attempt 2, somebody else's) is untouched.
      const service = await jobs.getJob(harness.serviceJobId(staleSuccess));
      assert.equal(service.job!.state, Job_State.STATE_ACTIVE);
      assert.equal(service.job!.attemptNumber, 2);

      // And the worker goes on with the next job.
      const fine = await harness.queue.add("fine", {}, TRACKED_JOB_OPTIONS);
      assert.equal((await harness.final(fine)).state, "completed");
      assert.equal((await jobs.getJob(harness.serviceJobId(fine))).job!.state, Job_State.STATE_COMPLETED);
      assert.equal(harness.worker.isRunning(), true);
    } finally {
      await harness.close();
    }
  });
});

describe("BullMQ tracking while the service goes down", { skip }, () => {
  const backend = sqliteBackend();
  let databaseUrl: string;
  let server: ServerProcess | undefined;

  before(async () => {
    databaseUrl = await backend.create();
    server = await serve(databaseUrl);
  });

  after(async () => {
    await server?.kill();
    await backend.dispose();
  });

  test("a run whose report cannot be delivered fails, and BullMQ runs it again once the service is back", async () => {
    const name = `${PREFIX}-outage`;
    const port = server!.port;
    let runs = 0;
    let release!: () => void;
    const serverDown = new Promise<void>((done) => (release = done));
    const harness = await trackedWorker(
      server!.address,
      name,
      async () => {
        runs += 1;
        if (runs === 1) await serverDown; // the service dies in the middle of this run
        return { runs };
      },
      { unreachableRetryDelayMs: 1000 },
    );
    try {
      const job = await harness.queue.add("outage", {}, TRACKED_JOB_OPTIONS);
      await eventually(() => runs === 1, 20_000, "the first run");
      await server!.kill();
      release();
      await eventually(
        () => harness.events.some((event) => event.type === "service-unreachable" && event.report === "completion"),
        30_000,
        "the completion report giving up",
      );
      assert.equal((await harness.queue.getJob(job.id!))!.attemptsMade >= 1, true);
      server = await serve(databaseUrl, { port });

      const final = await harness.final(job);
      assert.equal(final.state, "completed");
      assert.ok(runs >= 2, `runs: ${runs}`);
      const client = new JobClient({ target: server.address, token: WORKER_TOKEN });
      try {
        const service = await client.getJob(harness.serviceJobId(job));
        assert.equal(service.job!.state, Job_State.STATE_COMPLETED);
        assert.ok(service.job!.attemptNumber >= 2);
        assert.deepEqual(service.job!.result, { runs });
      } finally {
        client.close();
      }
      assert.ok(harness.delays.every((delay) => delay === 1000), `delays ${harness.delays}`);
    } finally {
      await harness.close();
    }
  });
});
