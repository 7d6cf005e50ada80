/**
 * A small AWS request transport for the stores the Lambda handler uses: SigV4 signing (the `aws4`
 * library), Node's own HTTP(S) with keep-alive, the timeouts of `CLIENT_TIMEOUTS`, and the AWS SDK's
 * standard retry rules (3 attempts, exponential backoff with full jitter, throttling and transient
 * errors, clock skew). It exists for cold start: the SDK v3 clients of DynamoDB and S3 are about
 * 700 KB of bundled code that V8 compiles when the function's module loads (60 ms of a 100 ms module
 * load on the benchmark machine); this module and the two protocol adapters are a few kilobytes.
 * What it speaks is documented by AWS: the DynamoDB JSON protocol and the S3 REST API
 * (lib/store/aws/dynamodb.ts, lib/store/aws/s3.ts). The SDK stays the client of everything else
 * (operators' commands, sinks, and any process where credentials are not in the environment).
 *
 * Node built-ins load on first request (dynamic imports), not at module load.
 */
import type { IncomingHttpHeaders } from 'node:http';
// CommonJS: its exports are one object Node's ES module loader cannot name statically.
import aws4 from 'aws4';
import { CLIENT_TIMEOUTS } from '../clientOptions.ts';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface AwsRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD';
  /** URI-encoded path, from `/`. */
  path: string;
  /** Query parameters (not encoded). */
  query?: Readonly<Record<string, string>>;
  headers?: Readonly<Record<string, string>>;
  body?: Uint8Array | string;
  /** Host name other than the endpoint's (S3 virtual-hosted buckets). */
  hostname?: string;
  /** Checks a successful response of this request (S3 answers some failures with 200); throws to fail or retry. */
  verify?: (response: AwsResponse) => void;
}

export interface AwsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * An error answered by an AWS service or met on the way to it, shaped like the SDK v3's service
 * exceptions (`name` is the error code, `$metadata.httpStatusCode` the HTTP status, absent when no
 * response came), so the stores map both clients' errors the same way. Fields the service sends with
 * the error (`Item`, `CancellationReasons`, …) are copied onto it.
 */
export class AwsServiceError extends Error {
  readonly $metadata: { httpStatusCode?: number; requestId?: string; attempts: number };
  /** Whether the transport's retry rules consider it transient (all attempts were used if so). */
  readonly $retryable: boolean;
  [field: string]: unknown;

  constructor(
    code: string,
    message: string,
    options: {
      status?: number;
      requestId?: string;
      retryable: boolean;
      attempts?: number;
      cause?: unknown;
      fields?: Record<string, unknown>;
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    for (const [k, v] of Object.entries(options.fields ?? {})) {
      if (k !== 'name' && k !== 'message' && k !== '$metadata' && k !== '$retryable') this[k] = v;
    }
    this.name = code;
    this.$metadata = {
      ...(options.status !== undefined ? { httpStatusCode: options.status } : {}),
      ...(options.requestId ? { requestId: options.requestId } : {}),
      attempts: options.attempts ?? 1,
    };
    this.$retryable = options.retryable;
  }
}

/** Error codes the SDK's standard retry strategy treats as throttling (longer backoff). */
const THROTTLING = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
]);
/** Error codes the SDK retries as transient. */
const TRANSIENT = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'InternalError']);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
/** Node's codes for a connection that failed or broke (the SDK retries these too). */
const NETWORK_ERRORS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
/** Error codes that may mean the local clock is off; the request is signed again with the server's time. */
const CLOCK_SKEW = new Set([
  'AuthFailure',
  'InvalidSignatureException',
  'RequestExpired',
  'RequestInTheFuture',
  'RequestTimeTooSkewed',
  'SignatureDoesNotMatch',
]);
const BASE_DELAY_MS = 100;
const THROTTLING_BASE_DELAY_MS = 500;
const MAX_BACKOFF_MS = 20_000;
/** Attempts in all, as the SDK's default `maxAttempts`. */
export const MAX_ATTEMPTS = 3;

export interface AwsTransportOptions {
  service: 'dynamodb' | 's3';
  region: string;
  /** `https://host[:port]` or `http://host:port`. */
  endpoint: string;
  credentials: AwsCredentials;
  /** Builds the error of a response with a status of 300 or more (the protocol's error body). */
  parseError: (response: AwsResponse) => { code: string; message: string; fields?: Record<string, unknown> };
  /** Checks a successful response's integrity (DynamoDB's CRC32 header); throws to retry it. */
  verify?: (response: AwsResponse) => void;
  maxAttempts?: number;
  /** Connection, whole-request and socket-idle timeouts (default `CLIENT_TIMEOUTS`, as the SDK clients). */
  timeouts?: Partial<Record<'connectionTimeout' | 'requestTimeout' | 'socketTimeout', number>>;
  /**
   * Wraps each attempt (tests: the fault campaign injects its faults here, as SDK middleware does
   * after the SDK's retry step). `send` sends the attempt, with extra headers if given. An error it
   * throws that is shaped like a service's (`name`, `$metadata.httpStatusCode`) or a network error's
   * (`code`) is retried by the same rules as a real one; any other error ends the request as is.
   */
  interceptAttempt?: (
    operation: string,
    send: (headers?: Readonly<Record<string, string>>) => Promise<AwsResponse>,
  ) => Promise<AwsResponse>;
  /**
   * Called once per request sent, retries included (tests and benchmarks count them); headers it
   * returns are added to that attempt (the fault proxy of the tests reads its marker from one).
   */
  onRequest?: (operation: string, attempt: number) => undefined | Readonly<Record<string, string>>;
}

type HttpModule = typeof import('node:https');
type Agent = import('node:https').Agent;

/** Connection pools, one per protocol, shared by every transport of the process. */
const agents = new Map<string, Promise<{ http: HttpModule; agent: Agent }>>();

function connection(protocol: 'http:' | 'https:') {
  let c = agents.get(protocol);
  if (!c) {
    c = (protocol === 'https:' ? import('node:https') : import('node:http')).then((m) => {
      const http = ((m as { default?: HttpModule }).default ?? m) as HttpModule;
      return { http, agent: new http.Agent({ keepAlive: true, maxSockets: 50 }) as Agent };
    });
    agents.set(protocol, c);
  }
  return c;
}

export class AwsTransport {
  readonly service: 'dynamodb' | 's3';
  readonly region: string;
  readonly endpoint: URL;
  private readonly credentials: AwsCredentials;
  private readonly parseError: AwsTransportOptions['parseError'];
  private readonly verify: AwsTransportOptions['verify'];
  private readonly maxAttempts: number;
  private readonly onRequest: AwsTransportOptions['onRequest'];
  private readonly interceptAttempt: AwsTransportOptions['interceptAttempt'];
  private readonly timeouts: { connectionTimeout: number; requestTimeout: number; socketTimeout: number };
  /** Server time minus local time, learnt from a clock-skew error. */
  private clockOffsetMs = 0;

  constructor(options: AwsTransportOptions) {
    this.service = options.service;
    this.region = options.region;
    this.endpoint = new URL(options.endpoint);
    this.credentials = options.credentials;
    this.parseError = options.parseError;
    this.verify = options.verify;
    this.maxAttempts = options.maxAttempts ?? MAX_ATTEMPTS;
    this.onRequest = options.onRequest;
    this.interceptAttempt = options.interceptAttempt;
    this.timeouts = { ...CLIENT_TIMEOUTS, ...options.timeouts };
  }

  /**
   * Sends a request, retried by the standard rules; resolves with a response of status below 300,
   * rejects with an `AwsServiceError`.
   */
  async send(operation: string, request: AwsRequest): Promise<AwsResponse> {
    let skewRetried = false;
    for (let attempt = 1; ; attempt++) {
      let error: AwsServiceError;
      let throttled = false;
      try {
        const extra = this.onRequest?.(operation, attempt);
        const sendAttempt = (more?: Readonly<Record<string, string>>) =>
          this.once(
            extra || more ? { ...request, headers: { ...request.headers, ...extra, ...more } } : request,
          );
        const response = await (this.interceptAttempt
          ? this.interceptAttempt(operation, sendAttempt)
          : sendAttempt());
        if (response.status < 300) {
          this.verify?.(response);
          request.verify?.(response);
          return response;
        }
        const parsed = this.parseError(response);
        const requestId =
          header(response.headers, 'x-amzn-requestid') ?? header(response.headers, 'x-amz-request-id');
        throttled = THROTTLING.has(parsed.code) || response.status === 429;
        const skew = CLOCK_SKEW.has(parsed.code) && this.learnSkew(response) && !skewRetried;
        if (skew) skewRetried = true;
        const retryable =
          skew || throttled || TRANSIENT.has(parsed.code) || TRANSIENT_STATUS.has(response.status);
        error = new AwsServiceError(parsed.code, parsed.message, {
          status: response.status,
          ...(requestId ? { requestId } : {}),
          retryable,
          attempts: attempt,
          ...(parsed.fields ? { fields: parsed.fields } : {}),
        });
        if (skew && attempt < this.maxAttempts) continue;
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { $metadata?: { httpStatusCode?: number } };
        const status = e?.$metadata?.httpStatusCode;
        if (err instanceof AwsServiceError) error = err;
        else if (status !== undefined) {
          // An error shaped like a service's, from an interceptor: the same rules as a response.
          throttled = THROTTLING.has(e.name) || status === 429;
          error = new AwsServiceError(e.name, e.message, {
            status,
            retryable: throttled || TRANSIENT.has(e.name) || TRANSIENT_STATUS.has(status),
            attempts: attempt,
            cause: err,
          });
        } else if (
          e?.name === 'TimeoutError' ||
          (typeof e?.code === 'string' && NETWORK_ERRORS.has(e.code))
        ) {
          // No response (refused, reset, timed out): the request may or may not have been applied;
          // like the SDK, it is sent again (the stores' writes are conditional or idempotent).
          error = new AwsServiceError(
            e.name === 'TimeoutError' ? 'TimeoutError' : (e.code as string),
            `${operation}: ${e.message}`,
            { retryable: true, attempts: attempt, cause: err },
          );
        } else throw err;
      }
      if (!error.$retryable || attempt >= this.maxAttempts) {
        error.$metadata.attempts = attempt;
        throw error;
      }
      const base = throttled ? THROTTLING_BASE_DELAY_MS : BASE_DELAY_MS;
      await delay(Math.random() * Math.min(MAX_BACKOFF_MS, base * 2 ** (attempt - 1)));
    }
  }

  private learnSkew(response: AwsResponse): boolean {
    const date = Date.parse(header(response.headers, 'date') ?? '');
    if (Number.isNaN(date)) return false;
    const offset = date - Date.now();
    if (Math.abs(offset - this.clockOffsetMs) < 60_000) return false;
    this.clockOffsetMs = offset;
    return true;
  }

  private async once(request: AwsRequest): Promise<AwsResponse> {
    const url = this.endpoint;
    const protocol = url.protocol === 'http:' ? 'http:' : 'https:';
    const { http, agent } = await connection(protocol);
    const query = request.query ? new URLSearchParams(request.query).toString() : '';
    const signed = aws4.sign(
      {
        service: this.service,
        region: this.region,
        method: request.method,
        hostname: request.hostname ?? url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: query ? `${request.path}?${query.replace(/\+/g, '%20')}` : request.path,
        headers: {
          ...request.headers,
          // aws4 signs with the time of the Date header when there is one.
          ...(this.clockOffsetMs ? { Date: new Date(Date.now() + this.clockOffsetMs).toUTCString() } : {}),
        },
        ...(request.body !== undefined ? { body: request.body as Buffer | string } : {}),
      },
      this.credentials,
    );
    return await new Promise<AwsResponse>((resolve, reject) => {
      const req = http.request(
        {
          protocol,
          hostname: signed.hostname,
          port: url.port || undefined,
          method: request.method,
          path: signed.path,
          headers: signed.headers as Record<string, string>,
          agent,
          timeout: this.timeouts.socketTimeout,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(overall);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.on('error', fail);
          res.on('aborted', () => fail(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
        },
      );
      function fail(err: Error) {
        clearTimeout(overall);
        req.destroy();
        reject(err);
      }
      const timeoutError = (what: string, ms: number) =>
        Object.assign(new Error(`${what} after ${ms} ms`), { name: 'TimeoutError' });
      const overall = setTimeout(
        () => fail(timeoutError('no complete response', this.timeouts.requestTimeout)),
        this.timeouts.requestTimeout,
      );
      req.on('socket', (socket) => {
        if (socket.connecting) {
          const connect = setTimeout(
            () => fail(timeoutError('no connection', this.timeouts.connectionTimeout)),
            this.timeouts.connectionTimeout,
          );
          socket.once('connect', () => clearTimeout(connect));
          socket.once('close', () => clearTimeout(connect));
        }
      });
      req.on('timeout', () => fail(timeoutError('socket idle', this.timeouts.socketTimeout)));
      req.on('error', fail);
      req.end(request.body === undefined ? undefined : request.body);
    });
  }
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
