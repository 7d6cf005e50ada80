/**
 * Repro (found by the fault campaign): a commit whose PutItem was applied by DynamoDB but whose
 * response was lost (a timeout or connection reset after the write) is retried by the SDK; the
 * retry's condition (stored epoch = E) then fails against the commit it just wrote, and the engine
 * takes its own commit for a lost race: it deletes the snapshot object that the commit item now
 * references. The task is then wedged: every later invocation fails with SnapshotMissingError
 * (non-retriable) and no record of that partition can be applied any more.
 *
 * Expected (and fixed): a conflict whose stored item is this very attempt (same attempt id and
 * epoch) is a success; the object is not deleted.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { balances } from '../../examples/balances.ts';
import { lambdaContext } from '../../harness/esm/lambdaContext.ts';
import { deposit, mskEvent } from '../../harness/esm/mskEvent.ts';
import { createKafkaHandler } from '../../lib/handler/createKafkaHandler.ts';
import { inspectTask } from '../../lib/ops/inspect.ts';
import { createDynamoDBClient, createS3Client } from '../../lib/store/clients.ts';
import { createAwsStores } from '../../lib/store/stores.ts';

const s3 = createS3Client();
const ddb = createDynamoDBClient();
afterAll(() => {
  s3.destroy();
  ddb.destroy();
});

/** Loses the response of the first PutItem after DynamoDB applied it, as a socket timeout would. */
function loseFirstCommitResponse(client: typeof ddb): void {
  let lost = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      if (!lost && (context as { commandName?: string }).commandName === 'PutItemCommand') {
        lost = true;
        throw Object.assign(new Error('socket timed out after the write was applied'), {
          name: 'TimeoutError',
          $metadata: {},
        });
      }
      return out;
    },
    // Inside the SDK's retry loop: the SDK retries the PutItem, as it would after a real timeout.
    { step: 'finalizeRequest', priority: 'low', name: 'reproLoseCommitResponse' },
  );
}

it('keeps its snapshot when the SDK retry of an applied commit meets its own write', async () => {
  const pipeline = `repro-${randomUUID().slice(0, 8)}`;
  const env = { ...process.env, TIDEMARK_PIPELINE: pipeline };
  const faulty = createDynamoDBClient();
  loseFirstCommitResponse(faulty);
  const first = createKafkaHandler(balances, { env, clients: { s3, dynamodb: faulty }, telemetry: false });
  const records = Array.from({ length: 5 }, (_, i) => deposit('orders', 0, i, 'a', 1));
  // The write was applied: whatever the first invocation answers, the retry must be able to go on.
  await first(mskEvent(records), lambdaContext()).catch(() => undefined);
  faulty.destroy();
  const retry = createKafkaHandler(balances, { env, clients: { s3, dynamodb: ddb }, telemetry: false });
  await retry(mskEvent([...records, deposit('orders', 0, 5, 'a', 1)]), lambdaContext());
  const r = await inspectTask(
    createAwsStores({
      bucket: process.env.TIDEMARK_BUCKET!,
      table: process.env.TIDEMARK_TABLE!,
      s3,
      dynamodb: ddb,
    }),
    {
      pipeline,
      topic: 'orders',
      partition: 0,
    },
  );
  expect(r).toMatchObject({ committedOffset: '6', state: { account: { a: { balance: 6, count: 6 } } } });
});
