/**
 * The layout of Iceberg's Hadoop catalog on S3, made safe by S3's conditional create: table
 * `<warehouse>/<namespace>/<table>`, versions `metadata/v<N>.metadata.json`, and
 * `metadata/version-hint.text` holding the latest N (a hint for readers such as icebird and
 * DuckDB's iceberg extension). The swap is the creation of `v<N+1>.metadata.json` with
 * `If-None-Match: *`: of two writers based on version N exactly one creates it.
 *
 * Loading lists `metadata/` for the highest N (the hint may lag: it is written after the swap).
 * Iceberg's spec deprecates file-system tables because rename is not atomic on object stores; the
 * conditional create is. Readers that use Iceberg's HadoopCatalog can read these tables; writers
 * other than Tidemark must use the same conditional create to commit safely.
 */

import { IcebergError } from '../../errors.ts';
import type { CommitOutcome, IcebergCatalog, LoadedTable, TableIdentifier } from './catalog.ts';
import { tableName } from './catalog.ts';
import type { IcebergFileIO } from './fileIO.ts';
import { parseTableMetadata, stringifyTableMetadata, type TableMetadata } from './metadata.ts';

export class S3HadoopCatalog implements IcebergCatalog {
  private readonly io: IcebergFileIO;
  private readonly warehouse: string;

  constructor(options: { io: IcebergFileIO; warehouse: string }) {
    this.io = options.io;
    this.warehouse = options.warehouse.replace(/\/+$/, '');
  }

  async defaultLocation(id: TableIdentifier): Promise<string> {
    return `${this.warehouse}/${id.namespace.split('.').join('/')}/${id.name}`;
  }

  private versionLocation(location: string, version: number): string {
    return `${location}/metadata/v${version}.metadata.json`;
  }

  async loadTable(id: TableIdentifier): Promise<LoadedTable | undefined> {
    const location = await this.defaultLocation(id);
    const versions = (await this.io.list(`${location}/metadata/v`))
      .map((uri) => /\/v(\d+)\.metadata\.json$/.exec(uri))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    if (versions.length === 0) return undefined;
    const version = Math.max(...versions);
    const metadataLocation = this.versionLocation(location, version);
    const bytes = await this.io.get(metadataLocation);
    if (!bytes)
      throw new IcebergError(`${metadataLocation} vanished while loading`, {
        table: tableName(id),
        retriable: true,
      });
    return {
      identifier: id,
      metadataLocation,
      metadata: parseTableMetadata(new TextDecoder().decode(bytes), metadataLocation),
      version: String(version),
    };
  }

  async createTable(id: TableIdentifier, metadata: TableMetadata): Promise<LoadedTable | undefined> {
    const outcome = await this.write(id, metadata, 1);
    return outcome.status === 'committed' ? outcome.table : undefined;
  }

  async commitTable(base: LoadedTable, metadata: TableMetadata): Promise<CommitOutcome> {
    return this.write(base.identifier, metadata, Number(base.version) + 1);
  }

  private async write(id: TableIdentifier, metadata: TableMetadata, version: number): Promise<CommitOutcome> {
    const metadataLocation = this.versionLocation(metadata.location, version);
    const bytes = new TextEncoder().encode(stringifyTableMetadata(metadata));
    const created = await this.io.put(metadataLocation, bytes, {
      ifAbsent: true,
      contentType: 'application/json',
    });
    if (!created) {
      // The SDK retries a PUT whose response was lost; the retry then finds the object its own
      // first attempt created. Only the same bytes mean this writer won; other bytes, another
      // writer won. No object yet means S3 answered 409: a conditional create of this key is still
      // in flight — maybe this writer's own first attempt, which may still land. That is an
      // unknown outcome, not a conflict: answering `conflict` made the committer delete the
      // manifests its landing metadata names (test/sink/iceberg/hadoopPutInFlight.repro.test.ts).
      const existing = await this.io.get(metadataLocation);
      if (!existing) {
        throw new IcebergError(
          `${metadataLocation} is being created by a request still in flight (perhaps this writer's own): outcome unknown`,
          { table: tableName(id), retriable: true },
        );
      }
      if (!Buffer.from(existing).equals(Buffer.from(bytes))) return { status: 'conflict' };
    }
    // The hint only speeds readers up; a lagging hint is corrected by the next commit.
    await this.io
      .put(`${metadata.location}/metadata/version-hint.text`, new TextEncoder().encode(String(version)), {
        contentType: 'text/plain',
      })
      .catch(() => {});
    return {
      status: 'committed',
      table: { identifier: id, metadataLocation, metadata, version: String(version) },
    };
  }
}
