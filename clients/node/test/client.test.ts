/** JobClient and AdminClient against a real `queue-service serve`, on SQLite and on PostgreSQL. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AdminClient,
  DeadlineExceeded,
  DeadLetterEntry_RecoveryStatus,
  durationFromMs,
  durationToMs,
  FailedPrecondition,
  InvalidArgument,
  Job_State,
  JobClient,
  JobQueueError,
  NotFound,
  PermissionDenied,
  Unauthenticated,
  adminService,
  jobService,
} from "jobqueue-client";
import { ADMIN_TOKEN, backends, serve, type ServerProcess, uniqueName, WORKER_TOKEN } from "./support.js";

for (const { backend, skip } of backends()) {
  describe(`clients on ${backend.name}`, { skip }, () => {
    let server: ServerProcess;
    let jobs: JobClient;
    let admin: AdminClient;

    before(async () => {
      server = await serve(await backend.create());
      jobs = new JobClient({ target: server.address, token: WORKER_TOKEN, timeoutMs: 10_000 });
      admin = new AdminClient({ target: server.address, token: ADMIN_TOKEN, timeoutMs: 10_000 });
    });

    after(async () => {
      jobs?.close();
      admin?.close();
      await server?.kill();
      await backend.dispose();
    });

    test("a unique enqueue answers with the job that counts", async () => {
      const queueName = uniqueName("node-unique");
      const first = await jobs.enqueue(queueName, "build", { day: 1 }, { unique: { key: "day-1", windowMs: 3_600_000 } });
      const again = await jobs.enqueue(queueName, "build", { day: 2 }, { unique: { key: "day-1", windowMs: 3_600_000 } });
      assert.equal(first.created, true);
      assert.equal(again.created, false);
      assert.equal(again.job!.jobId, first.job!.jobId);
      assert.equal(again.job!.uniqueKey, "day-1");
      const plain = await jobs.enqueue(queueName, "build", {}, { unique: "plain" });
      const plainAgain = await jobs.enqueue(queueName, "build", {}, { unique: "plain" });
      assert.deepEqual([plain.created, plainAgain.created], [true, false]);
      await assert.rejects(
        jobs.enqueue(queueName, "build", {}, { unique: { key: "k", states: [Job_State.STATE_COMPLETED] } }),
        (error: unknown) => error instanceof InvalidArgument && error.field === "unique.states",
      );
    });

    test("a job goes from enqueue through a failed run and a retry to completion", async () => {
      const queueName = uniqueName("node-lifecycle");
      const enqueued = await jobs.enqueue(queueName, "send", { to: "a@example.com", tries: [1, 2] });
      assert.equal(enqueued.created, true);
      const jobId = enqueued.job!.jobId;
      assert.match(jobId, /^[0-9a-f-]{36}$/); // generated here, so a retried call cannot enqueue twice
      assert.deepEqual(enqueued.job!.jobData, { to: "a@example.com", tries: [1, 2] });

      const again = await jobs.enqueue(queueName, "send", {}, { jobId });
      assert.equal(again.created, false);

      const [leased] = await jobs.leaseJobs({ queueNames: [queueName], workerId: "node-1", maxJobs: 5 });
      assert.equal(leased!.jobId, jobId);
      assert.equal(leased!.attemptNumber, 1);
      assert.equal(leased!.state, Job_State.STATE_ACTIVE);
      const beat = await jobs.heartbeatJob({ jobId, attemptNumber: 1, leaseDuration: durationFromMs(60_000) });
      assert.ok(beat.leaseExpiresAt instanceof Date && beat.leaseExpiresAt.getTime() > Date.now() + 50_000);

      const decision = await jobs.reportFailure(jobId, 1, { message: "connection reset", type: "ECONNRESET" }, {
        retryAfterMs: 0,
      });
      assert.equal(decision.shouldRetry, true);
      assert.equal(decision.job!.state, Job_State.STATE_FAILED);

      const started = await jobs.trackStart({ jobId, workerId: "node-2" });
      assert.equal(started.job!.attemptNumber, 2);
      const completed = await jobs.trackCompletion({
        jobId,
        attemptNumber: 2,
        result: { messageId: "m-1" },
        processingDuration: durationFromMs(1500),
      });
      assert.equal(completed.job!.state, Job_State.STATE_COMPLETED);
      assert.equal(durationToMs(completed.job!.processingDuration), 1500);

      const details = await jobs.getJob(jobId);
      assert.deepEqual(details.job!.result, { messageId: "m-1" });
      assert.equal(details.errorHistory.length, 1);
      assert.equal(details.errorHistory[0]!.type, "ECONNRESET");
      assert.equal(details.retryLog.length, 1);
    });

    test("batches: enqueueJobs, and trackCompletions refusing one completion alone", async () => {
      const queueName = uniqueName("node-batch");
      const batch = await jobs.enqueueJobs({
        jobs: [
          { queueName, jobName: "a", jobData: { n: 1 } },
          { queueName, jobName: "b", jobData: { n: 2 }, schedule: { $case: "delay", value: durationFromMs(0) } },
        ],
      });
      assert.equal(batch.results.length, 2);
      const leased = await jobs.leaseJobs({ queueNames: [queueName], maxJobs: 2 });
      assert.equal(leased.length, 2);
      const results = await jobs.trackCompletions({
        completions: [
          { jobId: leased[0]!.jobId, attemptNumber: 1 },
          { jobId: leased[1]!.jobId, attemptNumber: 7 },
        ],
      });
      assert.equal(results[0]!.error, undefined);
      assert.ok(results[1]!.error instanceof FailedPrecondition, String(results[1]!.error));
      assert.ok(results[1]!.error.reason, "the refusal carries the server's ErrorInfo reason");
    });

    test("errors are typed and carry the server's ErrorInfo reason and field", async () => {
      await assert.rejects(jobs.enqueue("", "send"), (error: unknown) => {
        assert.ok(error instanceof InvalidArgument);
        assert.ok(error instanceof JobQueueError);
        assert.equal(error.field, "queue_name");
        assert.ok(error.reason);
        assert.equal(error.fieldViolations.queue_name !== undefined, true);
        return true;
      });
      await assert.rejects(jobs.getJob(uniqueName("missing")), (error: unknown) => {
        assert.ok(error instanceof NotFound);
        assert.equal(error.field, "job_id");
        return true;
      });
      const job = (await jobs.enqueue(uniqueName("node-errors"), "x")).job!;
      await assert.rejects(jobs.trackCompletion({ jobId: job.jobId, attemptNumber: 1 }), (error: unknown) => {
        assert.ok(error instanceof FailedPrecondition);
        assert.equal(error.reason, "STALE_ATTEMPT"); // waiting, so no run 1 is current
        assert.equal(error.field, "attempt_number");
        return true;
      });
    });

    test("the token is checked: none is Unauthenticated, a worker's is refused admin calls", async () => {
      const anonymous = new JobClient({ target: server.address, timeoutMs: 5000 });
      try {
        await assert.rejects(anonymous.getJob("x"), Unauthenticated);
      } finally {
        anonymous.close();
      }
      const workerAsAdmin = new AdminClient({ target: server.address, token: WORKER_TOKEN, timeoutMs: 5000 });
      try {
        await assert.rejects(workerAsAdmin.getStatistics(), PermissionDenied);
      } finally {
        workerAsAdmin.close();
      }
    });

    test("a per-call deadline overrides the client's", async () => {
      await assert.rejects(jobs.getJob("x", { timeoutMs: 0 }), DeadlineExceeded);
      // A long-poll lease gets its wait plus a grace period, not the short default.
      const short = new JobClient({ target: server.address, token: WORKER_TOKEN, timeoutMs: 200 });
      try {
        const began = Date.now();
        const leased = await short.leaseJobs({ queueNames: [uniqueName("node-empty")], wait: durationFromMs(600) });
        assert.deepEqual(leased, []);
        assert.ok(Date.now() - began >= 500);
      } finally {
        short.close();
      }
    });

    test("admin: lease limits are set, shown and obeyed", async () => {
      const queueName = uniqueName("node-limits");
      await jobs.enqueue(queueName, "x");
      await jobs.enqueue(queueName, "x");
      const limited = await admin.updateQueuePolicy({
        queueName,
        maxActive: 1,
        maxStartsPerSecond: 0.5,
        updateMask: ["max_active", "max_starts_per_second"],
      });
      assert.equal(limited.queue!.maxActive, 1);
      assert.equal(limited.queue!.maxStartsPerSecond, 0.5);
      assert.equal((await admin.getQueue({ queueName })).queue!.maxActive, 1);
      assert.equal((await jobs.leaseJobs({ queueNames: [queueName], maxJobs: 2 })).length, 1);
      const cleared = await admin.updateQueuePolicy({ queueName, updateMask: ["max_active", "max_starts_per_second"] });
      assert.equal(cleared.queue!.maxActive, undefined);
      assert.equal((await jobs.leaseJobs({ queueNames: [queueName], maxJobs: 2 })).length, 1);
      await assert.rejects(admin.updateQueuePolicy({ queueName, maxStartsPerSecond: Number.NaN }), /max_starts_per_second/);
    });

    test("admin: a queue's circuit breaker opens on failures and holds its jobs", async () => {
      const queueName = uniqueName("node-breaker");
      const set = await admin.updateQueuePolicy({
        queueName,
        allowMissing: true,
        updateMask: ["circuit_breaker"],
        circuitBreaker: { enabled: true, failureRatio: 1, minRuns: 1, cooldown: durationFromMs(3_600_000) },
      });
      assert.equal(set.queue!.circuitBreaker!.enabled, true);
      assert.equal(set.queue!.circuitBreaker!.minRuns, 1);
      assert.equal(set.queue!.circuitBreakerStatus!.state, adminService.CircuitBreakerState.CIRCUIT_BREAKER_STATE_CLOSED);

      const first = (await jobs.enqueue(queueName, "x")).job!.jobId;
      await jobs.enqueue(queueName, "y");
      await jobs.leaseJobs({ queueNames: [queueName] });
      const failed = await jobs.reportFailure(first, 1, { message: "downstream down" });
      assert.equal(failed.movedToDeadLetter, false);
      const status = (await admin.getQueue({ queueName })).queue!.circuitBreakerStatus!;
      assert.equal(status.state, adminService.CircuitBreakerState.CIRCUIT_BREAKER_STATE_OPEN);
      assert.deepEqual(await jobs.leaseJobs({ queueNames: [queueName], maxJobs: 5 }), []);

      await assert.rejects(
        admin.updateQueuePolicy({ queueName, updateMask: ["circuit_breaker"], circuitBreaker: { enabled: true, failureRatio: 2 } }),
        (error: unknown) => error instanceof InvalidArgument && error.field === "circuit_breaker.failure_ratio",
      );
    });

    test("admin: queue policy, statistics, dead-letter triage and a bulk redrive stream", async () => {
      const queueName = uniqueName("node-admin");
      const updated = await admin.updateQueuePolicy({
        queueName,
        allowMissing: true,
        retryPolicy: {
          maxRetries: 1,
          retryDelays: [durationFromMs(1000)],
          jitter: 0,
          rules: [{ errorType: "ValidationError", retryable: false }],
          maxRetryDuration: durationFromMs(3_600_000),
        },
      });
      assert.equal(updated.queue!.effectiveRetryPolicy!.maxRetries, 1);
      assert.equal(updated.queue!.effectiveRetryPolicy!.rules[0]!.errorType, "ValidationError");
      assert.equal(updated.queue!.effectiveRetryPolicy!.rules[0]!.retryable, false);
      assert.equal(durationToMs(updated.queue!.retryPolicy!.maxRetryDuration!), 3_600_000);
      assert.deepEqual((await admin.getQueue({ queueName })).queue!.delaySchedule.map(durationToMs), [1000]);

      const jobId = (await jobs.enqueue(queueName, "x")).job!.jobId;
      await jobs.leaseJobs({ queueNames: [queueName] });
      const dead = await jobs.reportFailure(jobId, 1, { message: "bad data" }, { nonRetryable: true });
      assert.equal(dead.movedToDeadLetter, true);

      const statistics = await admin.getStatistics({ queueNames: [queueName] });
      assert.equal(statistics.queues[0]!.deadLetterCount, 1);
      const listed = await admin.listDeadLetterJobs({ filter: { queueName } });
      assert.equal(listed.entries.length, 1);
      assert.equal(listed.entries[0]!.id, dead.deadLetterId);
      const entry = await admin.updateDeadLetterJob({
        entry: { id: dead.deadLetterId, adminNotes: "looking", priority: 3 },
        updateMask: ["admin_notes", "priority"],
      });
      assert.equal(entry.entry!.adminNotes, "looking");

      const progress = [];
      for await (const message of admin.retryDeadLetterJobs({ selector: { $case: "filter", value: { queueName } }, dryRun: true })) {
        progress.push(message);
      }
      assert.equal(progress.at(-1)!.done, true);
      assert.equal(progress.at(-1)!.matchedCount, 1);

      const retried = await admin.retryDeadLetterJob({ id: dead.deadLetterId, jobData: { fixed: true } });
      assert.equal(retried.entry!.recoveryStatus, DeadLetterEntry_RecoveryStatus.RECOVERY_STATUS_RECOVERED);
      assert.equal(retried.job!.state, Job_State.STATE_WAITING);
      assert.deepEqual(retried.job!.jobData, { fixed: true });
      const audit = await admin.listAuditEvents({});
      assert.ok(audit.events.length >= 2);
    });

    test("cancel: a waiting job at once, a running one at its heartbeat and report, and in bulk", async () => {
      const queueName = uniqueName("node-cancel");
      const waiting = (await jobs.enqueue(queueName, "x")).job!.jobId;
      assert.equal((await jobs.cancelJob({ jobId: waiting, reason: "not needed" })).job!.state, Job_State.STATE_CANCELLED);

      const running = (await jobs.enqueue(queueName, "x")).job!.jobId;
      const [leased] = await jobs.leaseJobs({ queueNames: [queueName] });
      assert.equal(leased!.jobId, running);
      const marked = (await jobs.cancelJob({ jobId: running })).job!;
      assert.equal(marked.state, Job_State.STATE_ACTIVE);
      assert.ok(marked.cancelRequestedAt);
      assert.equal((await jobs.heartbeatJob({ jobId: running, attemptNumber: 1 })).cancelRequested, true);
      const reported = await jobs.reportFailure(running, 1, { message: "stopped" });
      assert.equal(reported.shouldRetry, false);
      assert.equal(reported.job!.state, Job_State.STATE_CANCELLED);

      await jobs.enqueue(queueName, "x");
      const progress = [];
      for await (const message of admin.cancelJobs({ selector: { $case: "filter", value: { queueName } } })) {
        progress.push(message);
      }
      assert.equal(progress.at(-1)!.done, true);
      assert.equal(progress.at(-1)!.cancelledCount, 1);
      const statistics = await admin.getStatistics({ queueNames: [queueName] });
      assert.equal(statistics.queues[0]!.cancelledCount, 3);
      await assert.rejects(
        (async () => {
          for await (const _ of new AdminClient({ target: server.address, token: WORKER_TOKEN }).cancelJobs({
            selector: { $case: "filter", value: { queueName } },
          })) {
            // never reached
          }
        })(),
        PermissionDenied,
      );
    });

    test("admin: a cron schedule is created, read, updated, paused, resumed and deleted", async () => {
      const name = uniqueName("node-schedule");
      const created = await admin.createSchedule({
        schedule: { name, cron: "30 2 * * *", timeZone: "Europe/Berlin", queueName: "node-reports", jobName: "build" },
      });
      assert.equal(created.schedule!.nextRunTimes.length, 5);
      const updated = await admin.updateSchedule({ schedule: { name, cron: "0 * * * *" }, updateMask: ["cron"] });
      assert.equal(updated.schedule!.cron, "0 * * * *");
      assert.equal(updated.schedule!.jobName, "build");
      assert.equal((await admin.pauseSchedule({ name })).schedule!.paused, true);
      assert.equal((await admin.resumeSchedule({ name })).schedule!.paused, false);
      assert.ok((await admin.listSchedules({})).schedules.some((schedule) => schedule.name === name));
      assert.equal((await admin.getSchedule({ name })).schedule!.timeZone, "Europe/Berlin");
      await admin.deleteSchedule({ name });
      await assert.rejects(admin.getSchedule({ name }), (error: Error) => error.constructor.name === "NotFound");
    });

    test("every RPC of both services has a client method", () => {
      for (const name of Object.keys(jobService.JobServiceService)) {
        assert.equal(typeof (jobs as unknown as Record<string, unknown>)[name], "function", `JobClient.${name}`);
      }
      for (const name of Object.keys(adminService.AdminServiceService)) {
        assert.equal(typeof (admin as unknown as Record<string, unknown>)[name], "function", `AdminClient.${name}`);
      }
    });
  });
}
