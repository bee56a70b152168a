/** `npm start`: runs the worker in the background and the producer in front, then stops the worker. */

import { fork } from "node:child_process";

const env = { ...process.env, EXAMPLE_QUEUE: process.env.EXAMPLE_QUEUE || `bullmq-example-${Date.now().toString(36)}` };
const worker = fork(new URL("./worker.js", import.meta.url), { env });
const producer = fork(new URL("./producer.js", import.meta.url), { env });
const code = await new Promise((done) => producer.once("exit", (exitCode) => done(exitCode ?? 1)));
const workerExited = new Promise((done) => worker.once("exit", done));
worker.kill("SIGTERM");
await workerExited;
process.exit(code);
