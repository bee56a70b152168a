/**
 * Three `serve` replicas on one PostgreSQL database behind one JobClient: round_robin spreads
 * the calls over all three, and when one is killed under load the callers see no error (the
 * calls it was answering are retried by gRPC on the others).
 */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";

import { JobClient, JobQueueError } from "jobqueue-client";

import { postgresBackend, postgresSkipReason, serve, type ServerProcess, uniqueName, WORKER_TOKEN } from "./support.js";

const REPLICAS = 3;
const CALLERS = 8;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** EnqueueJob calls a replica has answered, from its Prometheus endpoint. */
async function enqueueCalls(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("grpc_server_handled_total{") && line.includes('grpc_method="EnqueueJob"'))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
}

describe("failover between replicas", { skip: postgresSkipReason() }, () => {
  const backend = postgresBackend();
  const replicas: { server: ServerProcess; metricsPort: number }[] = [];

  before(async () => {
    const databaseUrl = await backend.create();
    for (let i = 0; i < REPLICAS; i++) {
      const metricsPort = await freePort();
      const server = await serve(databaseUrl, {
        args: ["--workers", "1"],
        metricsPort,
      });
      replicas.push({ server, metricsPort });
    }
  });

  after(async () => {
    for (const { server } of replicas) await server.kill();
    await backend.dispose();
  });

  test("calls spread over the replicas, and killing one under load costs the callers nothing", async () => {
    const client = new JobClient({
      target: replicas.map(({ server }) => server.address),
      token: WORKER_TOKEN,
      timeoutMs: 20_000,
    });
    const queueName = uniqueName("node-failover");
    const errors: unknown[] = [];
    const acknowledged: string[] = [];
    let stop = false;
    const caller = async (): Promise<void> => {
      while (!stop) {
        try {
          const { job } = await client.enqueue(queueName, "x", { at: Date.now() });
          acknowledged.push(job!.jobId);
          const read = await client.getJob(job!.jobId);
          assert.equal(read.job!.jobId, job!.jobId);
        } catch (error) {
          errors.push(error);
        }
      }
    };
    const load = Array.from({ length: CALLERS }, caller);
    try {
      const waitForCalls = async (count: number): Promise<void> => {
        const target = acknowledged.length + count;
        while (acknowledged.length < target && errors.length === 0) {
          await new Promise((done) => setTimeout(done, 20));
        }
      };
      await waitForCalls(150);
      const before = await Promise.all(replicas.map(({ metricsPort }) => enqueueCalls(metricsPort)));
      assert.ok(
        before.every((calls) => calls > 0),
        `round_robin sends calls to every replica: EnqueueJob calls per replica ${before}`,
      );

      await replicas[0]!.server.kill(); // SIGKILL, calls in flight on it
      const acknowledgedAtKill = acknowledged.length;
      await waitForCalls(300);
      stop = true;
      await Promise.all(load);
      assert.deepEqual(
        errors.map((error) => (error instanceof JobQueueError ? `${error.name}: ${error.message}` : String(error))),
        [],
      );
      assert.ok(acknowledged.length >= acknowledgedAtKill + 300);
      const survivors = await Promise.all(replicas.slice(1).map(({ metricsPort }) => enqueueCalls(metricsPort)));
      survivors.forEach((calls, i) => assert.ok(calls > before[i + 1]!, `replica ${i + 1} took over calls`));

      // Nothing acknowledged was lost: every job reads back through the survivors.
      const sample = acknowledged.filter((_, i) => i % 10 === 0);
      for (const jobId of sample) {
        assert.equal((await client.getJob(jobId)).job!.jobId, jobId);
      }
    } finally {
      stop = true;
      await Promise.all(load);
      client.close();
    }
  });
});
