/**
 * Benchmark 4, cost model: dollars per 1 M records on AWS for each approach, from the requests
 * counted in benchmark 2, the throughput measured there, and the dated price table in
 * `bench/prices.json`. Every assumption is returned with the figures, and printed with them.
 */
import { readFileSync } from 'node:fs';
import { fmt, fmtSpread } from './goals.ts';
import { type ApproachId, type ApproachResult, PER_MILLION, type RequestsResult } from './requests.ts';

interface Price {
  usd: number;
  unit: string;
  sources: string[];
  verified: boolean;
}

export interface PriceTable {
  retrieved: string;
  region: string;
  currency: string;
  note: string;
  prices: {
    lambdaArmGbSecond: Price;
    lambdaRequestPerMillion: Price;
    s3PutPer1000: Price;
    s3GetPer1000: Price;
    s3DeleteObjectsPer1000: Price;
    dynamoWriteRequestUnitPerMillion: Price;
    dynamoReadRequestUnitPerMillion: Price;
  };
}

export function loadPrices(path = new URL('./prices.json', import.meta.url)): PriceTable {
  return JSON.parse(readFileSync(path, 'utf8')) as PriceTable;
}

export interface CostOptions {
  memoryMb: number;
  /** Records per invocation (the ESM batch size). */
  batchRecords: number;
}

export interface ApproachCost {
  id: ApproachId;
  label: string;
  lambdaSeconds: number;
  gbSeconds: number;
  invocations: number;
  writeUnits: number;
  readUnits: number;
  usd: { lambdaDuration: number; lambdaRequests: number; s3: number; dynamodb: number; total: number };
}

export interface CostResult {
  prices: PriceTable;
  assumptions: string[];
  approaches: ApproachCost[];
  /** Total cost of each per-record approach over Tidemark warm. */
  ratios: Record<string, number>;
}

function costOf(a: ApproachResult, o: CostOptions, p: PriceTable) {
  const perSecond = a.recordsPerSecond.median;
  const lambdaSeconds = PER_MILLION / perSecond;
  const gbSeconds = lambdaSeconds * (o.memoryMb / 1024);
  const invocations = PER_MILLION / o.batchRecords;
  const r = a.per1M;
  const writeUnitsTotal = a.writeUnitsPer1M;
  const readUnitsTotal = a.readUnitsPer1M;
  const pr = p.prices;
  const s3 =
    ((r.s3Put + r.s3List + r.s3Other) / 1000) * pr.s3PutPer1000.usd +
    (r.s3Get / 1000) * pr.s3GetPer1000.usd +
    (r.s3Delete / 1000) * pr.s3DeleteObjectsPer1000.usd;
  const dynamodb =
    (writeUnitsTotal / 1e6) * pr.dynamoWriteRequestUnitPerMillion.usd +
    (readUnitsTotal / 1e6) * pr.dynamoReadRequestUnitPerMillion.usd;
  const lambdaDuration = gbSeconds * pr.lambdaArmGbSecond.usd;
  const lambdaRequests = (invocations / 1e6) * pr.lambdaRequestPerMillion.usd;
  return {
    id: a.id,
    label: a.label,
    lambdaSeconds,
    gbSeconds,
    invocations,
    writeUnits: writeUnitsTotal,
    readUnits: readUnitsTotal,
    usd: {
      lambdaDuration,
      lambdaRequests,
      s3,
      dynamodb,
      total: lambdaDuration + lambdaRequests + s3 + dynamodb,
    },
  } satisfies ApproachCost;
}

export function costModel(
  requests: RequestsResult,
  o: CostOptions,
  prices: PriceTable = loadPrices(),
): CostResult {
  const byId = new Map(requests.approaches.map((a) => [a.id, a]));
  const warm = byId.get('tidemark-warm');
  const approaches = requests.approaches.map((a) => costOf(a, o, prices));
  const perWrite = (a: ApproachResult | undefined) =>
    a && a.per1M.dynamoWrite > 0 ? a.writeUnitsPer1M / a.per1M.dynamoWrite : Number.NaN;
  const total = (id: ApproachId) => approaches.find((c) => c.id === id)?.usd.total ?? Number.NaN;
  const warmTotal = total('tidemark-warm');
  return {
    prices,
    assumptions: [
      `Prices: ${prices.region}, retrieved ${prices.retrieved}, first usage tier, no free tier; none verified on the AWS price pages (see bench/prices.json).`,
      `Lambda: arm64, ${o.memoryMb} MB; one invocation per ${o.batchRecords.toLocaleString('en-US')}-record batch (${(PER_MILLION / o.batchRecords).toLocaleString('en-US')} per 1 M records).`,
      'Lambda duration per 1 M records = 1 M ÷ the median records/s measured in benchmark 2 on this machine against the local servers. In AWS, DynamoDB and S3 answer slower than local servers (single-digit ms per request), which lengthens the per-record approaches far more than Tidemark; and a 1,024 MB function has about 0.6 vCPU. Treat the Lambda line as an order of magnitude.',
      `DynamoDB capacity as metered on every request (approximate item sizes, DynamoDB's sizing rules): a PutItem costs 1 WRU per started KB of its item, an UpdateItem 1 WRU (the account items and idempotency records stay under 1 KB), a strongly consistent GetItem 1 RRU per started 4 KB. Tidemark's commit items measured ${warm?.putItemBytes ? fmtSpread(warm.putItemBytes, 0, ' B') : 'n/a'}, so ${fmt(perWrite(warm), 2)} WRU per commit on average.`,
      'S3: snapshot PUTs and LISTs at the PUT price, GETs at the GET price, DeleteObjects at the PUT price (an upper bound: it may be free). Storage is left out: snapshots outside the retention window are deleted after each commit.',
      'Requests of (c) and (d) are extrapolated linearly from the measured sample (see benchmark 2).',
    ],
    approaches,
    ratios: {
      updateOverWarm: total('per-record-update') / warmTotal,
      idempotentOverWarm: total('per-record-idempotent') / warmTotal,
    },
  };
}
