/**
 * Benchmark 4, cost model: dollars per 1 M records on AWS for each approach, from the requests
 * counted in benchmark 2, the throughput measured there, and the dated price table in
 * `bench/prices.json`. Every assumption is returned with the figures, and printed with them.
 */
import { readFileSync } from 'node:fs';
import { strongReadUnits, writeUnits } from './itemSize.ts';
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
  /** Item size assumed for the per-record approaches' writes (account items, idempotency records). */
  baselineItemBytes: number;
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

function costOf(a: ApproachResult, o: CostOptions, p: PriceTable, wruPerWrite: number, rruPerRead: number) {
  const perSecond = a.recordsPerSecond.median;
  const lambdaSeconds = PER_MILLION / perSecond;
  const gbSeconds = lambdaSeconds * (o.memoryMb / 1024);
  const invocations = PER_MILLION / o.batchRecords;
  const r = a.per1M;
  const writeUnitsTotal = r.dynamoWrite * wruPerWrite;
  const readUnitsTotal = r.dynamoRead * rruPerRead;
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
  const commitBytes = warm?.commitItemBytes ?? 1024;
  const commitWru = writeUnits(commitBytes);
  const commitRru = strongReadUnits(commitBytes);
  const baselineWru = writeUnits(o.baselineItemBytes);
  const approaches: ApproachCost[] = [];
  for (const a of requests.approaches) {
    const tidemark = a.id.startsWith('tidemark');
    approaches.push(costOf(a, o, prices, tidemark ? commitWru : baselineWru, tidemark ? commitRru : 1));
  }
  const total = (id: ApproachId) => approaches.find((c) => c.id === id)?.usd.total ?? Number.NaN;
  const warmTotal = total('tidemark-warm');
  return {
    prices,
    assumptions: [
      `Prices: ${prices.region}, retrieved ${prices.retrieved}, first usage tier, no free tier; none verified on the AWS price pages (see bench/prices.json).`,
      `Lambda: arm64, ${o.memoryMb} MB; one invocation per ${o.batchRecords.toLocaleString('en-US')}-record batch (${(PER_MILLION / o.batchRecords).toLocaleString('en-US')} per 1 M records).`,
      'Lambda duration per 1 M records = 1 M ÷ the median records/s measured in benchmark 2 on this machine against the local servers. In AWS, DynamoDB and S3 answer slower than local servers (single-digit ms per request), which lengthens the per-record approaches far more than Tidemark; and a 1,024 MB function has about 0.6 vCPU. Treat the Lambda line as an order of magnitude.',
      `Tidemark commit item: about ${commitBytes} bytes (measured after the run), so ${commitWru} WRU per commit and ${commitRru} RRU per strongly consistent read.`,
      `Per-record approaches: every write is 1 WRU (account items and Powertools idempotency records are under 1 KB; ${o.baselineItemBytes} bytes assumed).`,
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
