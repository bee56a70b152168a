/**
 * Test support: real `queue-service serve` processes on SQLite or PostgreSQL, throwaway
 * PostgreSQL databases, and certificates made with the openssl command.
 *
 * Environment: QUEUE_SERVICE_BIN (default: the repository's .venv, then PATH),
 * QUEUE_TEST_POSTGRES_URL (an admin URL; each test file creates and drops its own database),
 * QUEUE_TEST_REQUIRE_POSTGRES=1 / QUEUE_TEST_REQUIRE_REDIS=1 turn a skip into a failure.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import pg from "pg";

export const ADMIN_TOKEN = "admin-token-for-node-tests-0123456789";
export const WORKER_TOKEN = "worker-token-for-node-tests-0123456789";
const LISTENING = "queue-service listening on ";
const REPOSITORY = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

export function queueServiceBin(): string {
  if (process.env.QUEUE_SERVICE_BIN) return process.env.QUEUE_SERVICE_BIN;
  const venv = join(REPOSITORY, ".venv", "bin", "queue-service");
  return existsSync(venv) ? venv : "queue-service";
}

// The directories this test process made, removed when it exits: a server's log and the
// certificates are read while their tests run, never after.
const madeDirectories: string[] = [];
process.once("exit", () => {
  for (const directory of madeDirectories) rmSync(directory, { recursive: true, force: true });
});

export function temporaryDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "jobqueue-node-"));
  madeDirectories.push(directory);
  return directory;
}

export class ServerProcess {
  constructor(
    readonly process: ChildProcess,
    readonly address: string,
    readonly log: () => string,
  ) {}

  get port(): number {
    return Number(this.address.split(":").pop());
  }

  /** SIGKILL, as a crash would. */
  async kill(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((done) => this.process.once("exit", done));
    try {
      process.kill(-this.process.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    await exited;
  }
}

export interface ServeOptions {
  port?: number;
  /** Prometheus /metrics port; off by default. */
  metricsPort?: number;
  tokens?: boolean;
  args?: string[];
  env?: Record<string, string>;
}

/** Start `queue-service serve` on 127.0.0.1 (port 0 unless given) and wait until it listens. */
export async function serve(databaseUrl: string, options: ServeOptions = {}): Promise<ServerProcess> {
  const directory = temporaryDirectory();
  const logPath = join(directory, "serve.log");
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    QUEUE_DATABASE_URL: databaseUrl,
    PYTHONUNBUFFERED: "1",
    ...(options.tokens === false ? {} : { QUEUE_ADMIN_TOKEN: ADMIN_TOKEN, QUEUE_WORKER_TOKEN: WORKER_TOKEN }),
    ...(options.env ?? {}),
  };
  delete env.QUEUE_PORT;
  const args = [
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    String(options.port ?? 0),
    "--metrics-port",
    String(options.metricsPort ?? 0),
    ...(options.args ?? []),
  ];
  const { openSync, readFileSync } = await import("node:fs");
  const child = spawn(queueServiceBin(), args, {
    env,
    cwd: directory,
    detached: true, // its own process group, killed whole
    stdio: ["ignore", "pipe", openSync(logPath, "w")],
  });
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error(`queue-service did not start within 60 s:\n${log()}`)), 60_000);
    lines.on("line", (line) => {
      if (line.startsWith(LISTENING)) {
        clearTimeout(timer);
        resolveAddress(line.slice(LISTENING.length).split(" ")[0]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`queue-service exited with ${code}:\n${log()}`));
    });
  });
  child.removeAllListeners("exit");
  child.stdout!.resume();
  return new ServerProcess(child, address, log);
}

export interface Backend {
  name: "sqlite" | "postgresql";
  /** A fresh, migrated database URL for the server; call once per test file. */
  create(): Promise<string>;
  /** Drops what create() made. */
  dispose(): Promise<void>;
}

function requireOrSkip(variable: string, reason: string): string | undefined {
  if (process.env[variable] === "1") {
    throw new Error(`${reason}, and ${variable}=1 makes this test mandatory`);
  }
  return reason;
}

export function sqliteBackend(): Backend {
  let directory: string | undefined;
  return {
    name: "sqlite",
    async create() {
      directory = temporaryDirectory();
      return `sqlite:///${join(directory, "jobs.sqlite3")}`;
    },
    async dispose() {
      if (directory) rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** libpq form of a SQLAlchemy URL: postgresql+psycopg2://... -> postgresql://... */
function libpqUrl(url: string): string {
  return url.replace(/^postgresql\+\w+:/, "postgresql:");
}

export function postgresAdminUrl(): string | undefined {
  return process.env.QUEUE_TEST_POSTGRES_URL || undefined;
}

/** Why PostgreSQL tests skip here, or undefined when they run; throws when they are required. */
export function postgresSkipReason(): string | undefined {
  if (postgresAdminUrl()) return undefined;
  return requireOrSkip("QUEUE_TEST_REQUIRE_POSTGRES", "PostgreSQL tests need QUEUE_TEST_POSTGRES_URL");
}

export function postgresBackend(): Backend {
  let name: string | undefined;
  const admin = (): pg.Client => new pg.Client({ connectionString: libpqUrl(postgresAdminUrl()!) });
  return {
    name: "postgresql",
    async create() {
      const adminUrl = postgresAdminUrl()!;
      name = `jobqueue_node_${process.pid}_${randomBytes(4).toString("hex")}`;
      const client = admin();
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      const url = new URL(adminUrl.replace(/^postgresql\+\w+:/, "postgresql:"));
      url.pathname = `/${name}`;
      const serverUrl = url.toString().replace(/^postgresql:/, "postgresql+psycopg2:");
      execFileSync(queueServiceBin(), ["migrate", "--database-url", serverUrl], { stdio: "pipe" });
      return serverUrl;
    },
    async dispose() {
      if (!name) return;
      const client = admin();
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The backends to run a suite on: SQLite always, PostgreSQL when configured. */
export function backends(): { backend: Backend; skip: string | undefined }[] {
  const skip = postgresSkipReason();
  return [
    { backend: sqliteBackend(), skip: undefined },
    { backend: postgresBackend(), skip },
  ];
}

export const REDIS_URL = process.env.QUEUE_TEST_REDIS_URL || "redis://127.0.0.1:6379";

/** Why Redis tests skip here, or undefined when Redis answers; throws when they are required. */
export async function redisSkipReason(): Promise<string | undefined> {
  const { Socket } = await import("node:net");
  const url = new URL(REDIS_URL);
  const reachable = await new Promise<boolean>((done) => {
    const socket = new Socket();
    socket.setTimeout(2000);
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
    socket.once("timeout", () => {
      socket.destroy();
      done(false);
    });
    socket.connect(Number(url.port || 6379), url.hostname);
  });
  if (reachable) return undefined;
  return requireOrSkip("QUEUE_TEST_REQUIRE_REDIS", `Redis is not reachable at ${REDIS_URL}`);
}

export interface Certificates {
  directory: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
}

/** A CA, a server certificate for localhost / 127.0.0.1, a client certificate and an unrelated CA. */
export function makeCertificates(): Certificates {
  const directory = temporaryDirectory();
  const path = (name: string): string => join(directory, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: directory, stdio: "pipe" });
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    openssl("req", "-x509", ...ec, "-keyout", `${ca}.key`, "-out", `${ca}.pem`, "-subj", `/CN=${ca}`, "-days", "2");
  }
  const issue = (stem: string, extensions: string): void => {
    openssl("req", ...ec, "-keyout", `${stem}.key`, "-out", `${stem}.csr`, "-subj", `/CN=${stem}`);
    writeFileSync(path(`${stem}.ext`), extensions);
    openssl(
      "x509", "-req", "-in", `${stem}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${stem}.pem`, "-days", "2", "-extfile", `${stem}.ext`,
    );
  };
  issue("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  issue("client", "extendedKeyUsage=clientAuth\n");
  return {
    directory,
    ca: path("ca.pem"),
    serverCert: path("server.pem"),
    serverKey: path("server.key"),
    clientCert: path("client.pem"),
    clientKey: path("client.key"),
    otherCa: path("other-ca.pem"),
  };
}

/** Poll `condition` every 50 ms until it is truthy or `timeoutMs` passes. */
export async function eventually<T>(
  condition: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
}
