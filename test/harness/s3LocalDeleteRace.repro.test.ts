/**
 * Repro (found by the Iceberg campaign): s3rver removes a key's directories once a delete leaves
 * them empty. A PUT of another key in the same directory that has just created it (mkdir) then
 * opens its file in a directory that is gone: ENOENT on a write stream nobody listens to, and the
 * whole process (the test run's servers) dies. The Iceberg committer deletes staged-epoch records
 * while the pipeline stages new ones beside them, so it happened within a minute of the campaign.
 * S3 has no directories; expected (and fixed in harness/s3Local.ts): deletes leave them, every PUT
 * and DELETE answers, and the objects are as written.
 */
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type S3Local, S3RVER_CREDENTIALS, startS3Local } from '../../harness/s3Local.ts';

let s3: S3Local;
let client: S3Client;

beforeAll(async () => {
  s3 = await startS3Local({ buckets: ['repro'] });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client.destroy();
  await s3.stop();
});

it('PUTs into a directory that concurrent deletes empty, without dying', async () => {
  const put = (key: string) => client.send(new PutObjectCommand({ Bucket: 'repro', Key: key, Body: 'x' }));
  const del = (keys: string[]) =>
    client.send(
      new DeleteObjectsCommand({
        Bucket: 'repro',
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
  for (let round = 0; round < 60; round++) {
    const dir = `staged/t/${round % 3}`;
    await put(`${dir}/old.json`);
    // The only object of the directory goes while new ones arrive beside it.
    await Promise.all([
      del([`${dir}/old.json`]),
      ...Array.from({ length: 4 }, (_, i) => put(`${dir}/new-${round}-${i}.json`)),
    ]);
    await del(Array.from({ length: 4 }, (_, i) => `${dir}/new-${round}-${i}.json`));
  }
  await put('staged/t/0/last.json');
  const listed = await client.send(new ListObjectsV2Command({ Bucket: 'repro', Prefix: 'staged/' }));
  expect((listed.Contents ?? []).map((o) => o.Key)).toEqual(['staged/t/0/last.json']);
});
