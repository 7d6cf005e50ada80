import { describe, expect, it } from 'vitest';
import { findBinary, MissingServerBinaryError } from '../../harness/servers/common.ts';

describe('local database servers (harness/servers)', () => {
  it('names the Debian package to install when a server binary is missing', () => {
    const err = (() => {
      try {
        findBinary(['no-such-server-binary'], ['/nonexistent'], 'mariadb-server');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MissingServerBinaryError);
    expect((err as MissingServerBinaryError).debianPackage).toBe('mariadb-server');
    expect(String(err)).toMatch(/apt-get install -y mariadb-server/);
  });

  it('finds the installed ones (the test run itself started them)', () => {
    expect(findBinary(['redis-server', 'valkey-server'], [], 'redis-server')).toMatch(/server$/);
    expect(process.env.TIDEMARK_TEST_POSTGRES_URL).toMatch(
      /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/,
    );
    expect(process.env.TIDEMARK_TEST_MYSQL_URL).toMatch(/^mysql:\/\/root@127\.0\.0\.1:\d+\/tidemark$/);
  });
});
