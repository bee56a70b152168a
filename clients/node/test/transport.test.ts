/** Transport options: gRPC's own retries on UNAVAILABLE, several targets, TLS and mutual TLS. */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { channelTarget, jobService, JobClient, serviceConfig, Unavailable } from "jobqueue-client";

import { makeCertificates, serve, sqliteBackend, WORKER_TOKEN, type Certificates } from "./support.js";

describe("gRPC retry policy", () => {
  const calls: Record<string, number> = {};
  let server: Server;
  let target: string;

  before(async () => {
    // A JobService that answers UNAVAILABLE to the first two calls of each method.
    const unavailableTwice = (method: string, answer: object) => (_call: unknown, callback: Function) => {
      calls[method] = (calls[method] ?? 0) + 1;
      if (calls[method]! <= 2) {
        callback({ code: status.UNAVAILABLE, details: "restarting" } as Partial<ServiceError>);
      } else {
        callback(null, answer);
      }
    };
    server = new Server();
    server.addService(jobService.JobServiceService, {
      getJob: unavailableTwice("GetJob", jobService.GetJobResponse.fromPartial({ job: { jobId: "j1" } })),
      trackStart: unavailableTwice("TrackStart", jobService.TrackStartResponse.fromPartial({ job: { jobId: "j1" } })),
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    target = `127.0.0.1:${port}`;
  });

  after(() => server.forceShutdown());

  test("calls safe to repeat are retried on UNAVAILABLE; a start is not", async () => {
    const client = new JobClient({ target, timeoutMs: 10_000 });
    try {
      const details = await client.getJob("j1");
      assert.equal(details.job!.jobId, "j1");
      assert.equal(calls.GetJob, 3); // two UNAVAILABLE, then the answer
      await assert.rejects(client.trackStart({ jobId: "j1" }), Unavailable);
      assert.equal(calls.TrackStart, 1);
    } finally {
      client.close();
    }
  });

  test("retry: false turns the retries off", async () => {
    calls.GetJob = 0;
    const client = new JobClient({ target, timeoutMs: 10_000, retry: false });
    try {
      await assert.rejects(client.getJob("j1"), Unavailable);
      assert.equal(calls.GetJob, 1);
    } finally {
      client.close();
    }
  });

  test("the service config names round_robin and the idempotent methods only", () => {
    const config = JSON.parse(serviceConfig({ "jobqueue.v1.JobService": ["GetJob"] }));
    assert.deepEqual(config.loadBalancingConfig, [{ round_robin: {} }]);
    assert.deepEqual(config.methodConfig[0].name, [{ service: "jobqueue.v1.JobService", method: "GetJob" }]);
    assert.deepEqual(config.methodConfig[0].retryPolicy.retryableStatusCodes, ["UNAVAILABLE"]);
  });
});

test("a server that is back is found within 6 s (5 s ± 20 %); the caller's channel options come first", () => {
  const client = new JobClient({ target: "127.0.0.1:1" });
  const tuned = new JobClient({ target: "127.0.0.1:1", channelOptions: { "grpc.max_reconnect_backoff_ms": 1_000 } });
  try {
    assert.equal(client.connection.channelOptions["grpc.max_reconnect_backoff_ms"], 5_000);
    assert.equal(client.connection.channelOptions["grpc.initial_reconnect_backoff_ms"], 500);
    assert.equal(tuned.connection.channelOptions["grpc.max_reconnect_backoff_ms"], 1_000);
  } finally {
    client.close();
    tuned.close();
  }
});

test("the temporary directories of a test process are gone once it exits", () => {
  const support = new URL("./support.js", import.meta.url).href;
  const made = execFileSync(
    process.execPath,
    ["--input-type=module", "-e", `const { temporaryDirectory } = await import(${JSON.stringify(support)});
console.log(temporaryDirectory());`],
    { encoding: "utf8" },
  ).trim();
  assert.match(made, /jobqueue-node-/);
  assert.equal(existsSync(made), false, `${made} is left behind`);
});

test("several targets become one round_robin channel target", () => {
  assert.equal(channelTarget("localhost:50051"), "localhost:50051");
  assert.equal(channelTarget(["127.0.0.1:1", "127.0.0.1:2"]), "ipv4:127.0.0.1:1,127.0.0.1:2");
  assert.equal(channelTarget(["[::1]:1", "[::1]:2"]), "ipv6:[::1]:1,[::1]:2");
  assert.throws(() => channelTarget(["jobs-a:1", "jobs-b:1"]), /IP addresses/);
  assert.throws(() => channelTarget([]), /at least one/);
});

describe("TLS and mutual TLS against serve", () => {
  const backend = sqliteBackend();
  let certificates: Certificates;

  before(() => {
    certificates = makeCertificates();
  });
  after(() => backend.dispose());

  test("server TLS with a bearer token; a client that does not trust the CA is refused", async () => {
    const server = await serve(await backend.create(), {
      args: ["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey],
    });
    try {
      const trusted = new JobClient({
        target: `localhost:${server.port}`,
        token: WORKER_TOKEN,
        tls: { rootCertificates: readFileSync(certificates.ca) },
        timeoutMs: 10_000,
      });
      const stranger = new JobClient({
        target: `localhost:${server.port}`,
        token: WORKER_TOKEN,
        tls: { rootCertificates: readFileSync(certificates.otherCa) },
        timeoutMs: 5000,
        retry: false,
      });
      try {
        const enqueued = await trusted.enqueue("node-tls", "x");
        assert.equal(enqueued.created, true);
        await assert.rejects(stranger.getJob(enqueued.job!.jobId), Unavailable);
      } finally {
        trusted.close();
        stranger.close();
      }
    } finally {
      await server.kill();
    }
  });

  test("mutual TLS: a client certificate is required; serverName verifies another name", async () => {
    const server = await serve(await backend.create(), {
      args: [
        "--tls-cert",
        certificates.serverCert,
        "--tls-key",
        certificates.serverKey,
        "--tls-client-ca",
        certificates.ca,
      ],
    });
    const tls = {
      rootCertificates: readFileSync(certificates.ca),
      certificateChain: readFileSync(certificates.clientCert),
      privateKey: readFileSync(certificates.clientKey),
      serverName: "localhost",
    };
    // 127.0.0.1 is in the certificate too; serverName makes the client check "localhost" instead.
    const withCertificate = new JobClient({ target: server.address, token: WORKER_TOKEN, tls, timeoutMs: 10_000 });
    const withoutCertificate = new JobClient({
      target: `localhost:${server.port}`,
      token: WORKER_TOKEN,
      tls: { rootCertificates: tls.rootCertificates },
      timeoutMs: 5000,
      retry: false,
    });
    try {
      assert.equal((await withCertificate.enqueue("node-mtls", "x")).created, true);
      await assert.rejects(withoutCertificate.enqueue("node-mtls", "x"), Unavailable);
      assert.throws(
        () => new JobClient({ target: server.address, tls: { certificateChain: tls.certificateChain } }),
        /private key/,
      );
    } finally {
      withCertificate.close();
      withoutCertificate.close();
      await server.kill();
    }
  });
});
