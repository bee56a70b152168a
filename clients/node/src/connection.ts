/**
 * The channel both clients share: targets, token, TLS, deadlines, round_robin over several
 * replicas and gRPC's own retry policy for the calls that are safe to repeat.
 */

import { isIP } from "node:net";

import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";

import { fromServiceError } from "./errors.js";

export const DEFAULT_TARGET = "localhost:50051";
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Retried by gRPC itself when a call ends UNAVAILABLE (server unreachable, restarting, or its
 * database briefly down). Only methods that are safe to repeat are listed by the clients.
 */
export const RETRY_POLICY = {
  maxAttempts: 5,
  initialBackoff: "0.2s",
  maxBackoff: "5s",
  backoffMultiplier: 2,
  retryableStatusCodes: ["UNAVAILABLE"],
} as const;

/**
 * How soon a client finds a server that is back. gRPC's own wait between connection attempts
 * starts at 1 s and grows to 120 s, so after an outage of a minute a client went on failing for
 * up to a minute more once its server was back.
 */
export const RECONNECT_BACKOFF = {
  "grpc.initial_reconnect_backoff_ms": 500,
  "grpc.max_reconnect_backoff_ms": 5_000,
} as const;

/** TLS settings: PEM contents. Without `rootCertificates` the system's trust store is used. */
export interface TlsOptions {
  rootCertificates?: Buffer | string;
  /** For mutual TLS: the client's certificate chain and its private key. */
  certificateChain?: Buffer | string;
  privateKey?: Buffer | string;
  /** Host name to verify the server certificate against, when it differs from the target's. */
  serverName?: string;
}

export interface ConnectionOptions {
  /**
   * host:port, a list of them (IP addresses, one per replica), or one DNS name with several
   * addresses (`dns:///jobs.internal:50051`). Calls are spread over all of them by round_robin.
   */
  target?: string | readonly string[];
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  /** true: TLS with the system's trust store; or own CA, client certificate and server name. */
  tls?: boolean | TlsOptions;
  /** Each call's deadline in milliseconds unless a call says otherwise; null means none. */
  timeoutMs?: number | null;
  /** false turns off gRPC's retry of UNAVAILABLE calls. */
  retry?: boolean;
  /** Extra grpc-js channel options; one the client also sets takes the place of the client's. */
  channelOptions?: ChannelOptions;
}

export interface CallSettings {
  /** This call's deadline in milliseconds; null means none; the client's default when absent. */
  timeoutMs?: number | null;
  /** Cancels the call. */
  signal?: AbortSignal;
}

type IdempotentMethods = Readonly<Record<string, readonly string[]>>;

/** A gRPC service config (JSON): round_robin, and a retry on UNAVAILABLE for `idempotentMethods`. */
export function serviceConfig(idempotentMethods: IdempotentMethods, retry = true): string {
  const name = Object.entries(idempotentMethods).flatMap(([service, methods]) =>
    methods.map((method) => ({ service, method })),
  );
  const config: Record<string, unknown> = { loadBalancingConfig: [{ round_robin: {} }] };
  if (retry && name.length > 0) {
    config.methodConfig = [{ name, retryPolicy: RETRY_POLICY }];
  }
  return JSON.stringify(config);
}

/**
 * One grpc-js target for one or several addresses. Several addresses must be IP literals
 * (grpc-js resolves a list only as `ipv4:` or `ipv6:`); for names, give one DNS name.
 */
export function channelTarget(target: string | readonly string[]): string {
  if (typeof target === "string") {
    return target;
  }
  if (target.length === 0) {
    throw new TypeError("target: give at least one address");
  }
  if (target.length === 1) {
    return target[0]!;
  }
  const hosts = target.map((address) => {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
    const host = match?.[1];
    if (host === undefined || isIP(host) === 0) {
      throw new TypeError(
        `target: ${JSON.stringify(address)} is not IP:port; several targets must be IP addresses, ` +
          "or use one DNS name that has several addresses",
      );
    }
    return isIP(host);
  });
  const family = hosts[0];
  if (hosts.some((kind) => kind !== family)) {
    throw new TypeError("target: several targets must all be IPv4 or all IPv6");
  }
  return `${family === 4 ? "ipv4" : "ipv6"}:${target.join(",")}`;
}

function pem(value: Buffer | string | undefined): Buffer | null {
  if (value === undefined) return null;
  return typeof value === "string" ? Buffer.from(value) : value;
}

/** What every call needs: the channel's address and credentials, the token, the default deadline. */
export class Connection {
  readonly target: string;
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
  readonly timeoutMs: number | null;
  private readonly metadata: Metadata;

  constructor(options: ConnectionOptions, idempotentMethods: IdempotentMethods) {
    this.target = channelTarget(options.target ?? DEFAULT_TARGET);
    this.timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs;
    const retry = options.retry ?? true;
    const tls: TlsOptions | undefined = options.tls === true ? {} : options.tls || undefined;
    const channelOptions: ChannelOptions = {
      "grpc.enable_retries": retry ? 1 : 0,
      "grpc.service_config": serviceConfig(idempotentMethods, retry),
      ...RECONNECT_BACKOFF,
    };
    this.metadata = new Metadata();
    if (tls) {
      if ((tls.certificateChain === undefined) !== (tls.privateKey === undefined)) {
        throw new TypeError("tls: a client certificate needs its private key, and the other way round");
      }
      if (tls.serverName) {
        channelOptions["grpc.ssl_target_name_override"] = tls.serverName;
      }
      let channelCredentials = credentials.createSsl(
        pem(tls.rootCertificates),
        pem(tls.privateKey),
        pem(tls.certificateChain),
      );
      if (options.token) {
        // Call credentials: grpc-js never sends them over plaintext.
        const header = `Bearer ${options.token}`;
        channelCredentials = credentials.combineChannelCredentials(
          channelCredentials,
          credentials.createFromMetadataGenerator((_params, callback) => {
            const metadata = new Metadata();
            metadata.set("authorization", header);
            callback(null, metadata);
          }),
        );
      }
      this.credentials = channelCredentials;
    } else {
      // Plaintext (loopback, or a trusted network): the token travels as call metadata.
      if (options.token) {
        this.metadata.set("authorization", `Bearer ${options.token}`);
      }
      this.credentials = credentials.createInsecure();
    }
    this.channelOptions = { ...channelOptions, ...(options.channelOptions ?? {}) };
  }

  callOptions(settings: CallSettings = {}): Partial<CallOptions> {
    const timeoutMs = settings.timeoutMs === undefined ? this.timeoutMs : settings.timeoutMs;
    return timeoutMs === null ? {} : { deadline: new Date(Date.now() + timeoutMs) };
  }

  /** Call a unary RPC; a failure rejects with the typed error for its status. */
  unary<Request, Response>(
    method: (
      request: Request,
      metadata: Metadata,
      options: Partial<CallOptions>,
      callback: (error: ServiceError | null, response: Response) => void,
    ) => ClientUnaryCall,
    request: Request,
    settings: CallSettings = {},
  ): Promise<Response> {
    return new Promise<Response>((resolve, reject) => {
      const call = method(request, this.metadata.clone(), this.callOptions(settings), (error, response) => {
        settings.signal?.removeEventListener("abort", cancel);
        if (error) {
          reject(fromServiceError(error));
        } else {
          resolve(response);
        }
      });
      const cancel = (): void => call.cancel();
      if (settings.signal?.aborted) {
        call.cancel();
      } else {
        settings.signal?.addEventListener("abort", cancel, { once: true });
      }
    });
  }

  /** Call a server-streaming RPC and yield its responses; a failure throws the typed error. */
  async *stream<Request, Response>(
    method: (request: Request, metadata: Metadata, options: Partial<CallOptions>) => ClientReadableStream<Response>,
    request: Request,
    settings: CallSettings = {},
  ): AsyncGenerator<Response> {
    const call = method(request, this.metadata.clone(), this.callOptions(settings));
    const cancel = (): void => call.cancel();
    settings.signal?.addEventListener("abort", cancel, { once: true });
    try {
      for await (const response of call) {
        yield response as Response;
      }
    } catch (error) {
      if (error && typeof error === "object" && "code" in error) {
        throw fromServiceError(error as ServiceError);
      }
      throw error;
    } finally {
      settings.signal?.removeEventListener("abort", cancel);
      call.cancel();
    }
  }
}
