/**
 * `DynamoRequests` over the DynamoDB JSON protocol (version 2012-08-10): a signed POST of the
 * operation's input as JSON, `X-Amz-Target: DynamoDB_20120810.<Operation>`. Binary attributes
 * (`B`, `BS`) travel base64-encoded, as the protocol defines; everything else is the API's shape
 * unchanged, which is why one JSON encoding serves every operation. Errors carry the code after the
 * `#` of `__type`, and the fields the service returns with them (`Item` of a failed condition,
 * `CancellationReasons` of a canceled transaction). Responses are checked against DynamoDB's
 * `x-amz-crc32` header and retried when they do not match.
 */
import { crc32 } from 'node:zlib';
import type { DynamoRequests } from '../dynamodb/requests.ts';
import { dnsSuffix, type LiteAwsSettings } from './environment.ts';
import {
  type AwsResponse,
  AwsServiceError,
  AwsTransport,
  type AwsTransportOptions,
  header,
} from './transport.ts';

const TARGET_PREFIX = 'DynamoDB_20120810.';
const CONTENT_TYPE = 'application/x-amz-json-1.0';

/** Bytes become base64 strings (the only binary values in DynamoDB inputs are `B` and `BS` members). */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Uint8Array)
    return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  return value;
}

/** `B` and `BS` members of attribute values become bytes again. */
function reviver(key: string, value: unknown): unknown {
  if (key === 'B' && typeof value === 'string') return new Uint8Array(Buffer.from(value, 'base64'));
  if (key === 'BS' && Array.isArray(value) && value.every((v) => typeof v === 'string')) {
    return value.map((v: string) => new Uint8Array(Buffer.from(v, 'base64')));
  }
  return value;
}

export function encodeDynamoJson(input: unknown): string {
  return JSON.stringify(input, replacer);
}

export function decodeDynamoJson(body: Buffer | string): Record<string, unknown> {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  return text.length === 0 ? {} : (JSON.parse(text, reviver) as Record<string, unknown>);
}

/** The error of a DynamoDB response (JSON `__type` and `message`; a body that is not JSON, by status). */
export function parseDynamoError(response: AwsResponse): {
  code: string;
  message: string;
  fields?: Record<string, unknown>;
} {
  let body: Record<string, unknown> = {};
  try {
    body = decodeDynamoJson(response.body);
  } catch {
    // not JSON (a proxy's page): the status says what happened
  }
  const type = String(body.__type ?? header(response.headers, 'x-amzn-errortype') ?? '');
  const code = type.slice(type.lastIndexOf('#') + 1).split(':')[0] || `Http${response.status}`;
  const message = String(body.message ?? body.Message ?? `HTTP ${response.status}`);
  const { __type: _t, message: _m, Message: _M, ...fields } = body;
  return { code, message, fields };
}

function verifyCrc32(response: AwsResponse): void {
  const expected = header(response.headers, 'x-amz-crc32');
  if (expected === undefined) return;
  if (crc32(response.body) >>> 0 !== Number(expected)) {
    throw new AwsServiceError('CRC32CheckFailed', 'the response does not match its x-amz-crc32 checksum', {
      status: response.status,
      retryable: true,
    });
  }
}

export type LiteDynamoOptions = Pick<
  AwsTransportOptions,
  'onRequest' | 'interceptAttempt' | 'maxAttempts' | 'timeouts'
>;

export function liteDynamoRequests(
  settings: LiteAwsSettings,
  options: LiteDynamoOptions = {},
): DynamoRequests {
  const transport = new AwsTransport({
    service: 'dynamodb',
    region: settings.region,
    endpoint: settings.endpoint ?? `https://dynamodb.${settings.region}.${dnsSuffix(settings.region)}`,
    credentials: settings.credentials,
    parseError: parseDynamoError,
    verify: verifyCrc32,
    ...options,
  });
  return {
    client: 'lite',
    async send(operation, input) {
      const response = await transport.send(operation, {
        method: 'POST',
        path: '/',
        headers: { 'Content-Type': CONTENT_TYPE, 'X-Amz-Target': TARGET_PREFIX + operation },
        body: encodeDynamoJson(input),
      });
      return decodeDynamoJson(response.body) as never;
    },
  };
}
