import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig } from '../../lib/config/config.ts';
import { ENV, OTHER_ENV_NAMES, OTHER_ENV_PREFIXES } from '../../lib/config/env.ts';
import { ConfigurationError } from '../../lib/errors.ts';

const required = { TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't', TIDEMARK_PIPELINE: 'p' };

describe('loadConfig', () => {
  it('applies defaults, then code, then the environment', () => {
    expect(loadConfig(required)).toMatchObject({ bucket: 'b', table: 't', pipeline: 'p', ...DEFAULTS });
    expect(loadConfig(required, { epochMaxRecords: 5, poisonPolicy: 'quarantine' })).toMatchObject({
      epochMaxRecords: 5,
      poisonPolicy: 'quarantine',
    });
    expect(
      loadConfig({ ...required, TIDEMARK_EPOCH_MAX_RECORDS: ' 7 ' }, { epochMaxRecords: 5 }).epochMaxRecords,
    ).toBe(7);
    expect(
      loadConfig({ TIDEMARK_BUCKET: 'b', TIDEMARK_TABLE: 't' }, { pipeline: 'from-code' }).pipeline,
    ).toBe('from-code');
  });

  it('names the missing setting', () => {
    for (const missing of Object.keys(required)) {
      const env: Record<string, string> = { ...required };
      delete env[missing];
      const err = (() => {
        try {
          loadConfig(env);
        } catch (e) {
          return e as ConfigurationError;
        }
      })();
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err!.setting).toBe(missing);
      expect(err!.message).toContain(missing);
    }
  });

  it('refuses invalid values, naming them', () => {
    expect(() => loadConfig({ ...required, TIDEMARK_EPOCH_MAX_RECORDS: '0' })).toThrow(
      /TIDEMARK_EPOCH_MAX_RECORDS/,
    );
    expect(() => loadConfig({ ...required, TIDEMARK_TIME_RESERVE_MS: '1.5' })).toThrow(ConfigurationError);
    expect(() => loadConfig({ ...required, TIDEMARK_POISON_POLICY: 'ignore' })).toThrow(/fail, quarantine/);
    expect(() => loadConfig({ ...required, TIDEMARK_PIPELINE: 'has space' })).toThrow(/TIDEMARK_PIPELINE/);
    expect(() => loadConfig({ ...required, TIDEMARK_PREFIX: '/abs' })).toThrow(/TIDEMARK_PREFIX/);
  });
});

describe('unknown TIDEMARK_* variables', () => {
  it('refuses a typo, naming the closest variable Tidemark knows and the ones it reads', () => {
    const err = (() => {
      try {
        loadConfig({ ...required, TIDEMARK_EPOCH_MAX_RECORD: '5' });
      } catch (e) {
        return e;
      }
    })() as ConfigurationError;
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.setting).toBe('TIDEMARK_EPOCH_MAX_RECORD');
    expect(err.message).toMatch(
      /unknown environment variable TIDEMARK_EPOCH_MAX_RECORD: did you mean TIDEMARK_EPOCH_MAX_RECORDS\?/,
    );
    expect(err.message).toContain(ENV.snapshotMode);
    expect(() => loadConfig({ ...required, TIDEMARK_BUKCET: 'b' })).toThrow(/did you mean TIDEMARK_BUCKET\?/);
    expect(() => loadConfig({ ...required, TIDEMARK_SNAPSHOTMODE: 'full' })).toThrow(
      /TIDEMARK_SNAPSHOT_MODE\?/,
    );
  });

  it("accepts the variables of Tidemark's other tools, and ignores other names and unset ones", () => {
    const others = Object.fromEntries(OTHER_ENV_NAMES.map((n) => [n, 'x']));
    expect(() =>
      loadConfig({
        ...required,
        ...others,
        TIDEMARK_DEPLOY_TOPIC: 'orders',
        TIDEMARK_TYPO: undefined,
        AWS_REGION: 'eu-west-1',
        tidemark_lowercase: 'x',
      }),
    ).not.toThrow();
  });

  it('knows every TIDEMARK_* variable the repository reads', () => {
    const known = new Set<string>([...Object.values(ENV), ...OTHER_ENV_NAMES]);
    const root = new URL('../../', import.meta.url);
    const files = [
      'lib',
      'harness',
      'cdk',
      'functions',
      'bin',
      'scripts',
      'test',
      'bench',
      'examples',
    ].flatMap((dir) =>
      existsSync(new URL(dir, root))
        ? readdirSync(new URL(dir, root), { recursive: true, encoding: 'utf8' })
            .filter((f) => /\.(ts|mjs|js)$/.test(f))
            .map((f) => new URL(`${dir}/${f}`, root))
        : [],
    );
    const unknown = new Set<string>();
    // This file spells typos on purpose.
    for (const file of files.filter((f) => f.href !== import.meta.url)) {
      // Whole names only: prefixes written in code (`TIDEMARK_DB_…`) end with an underscore.
      for (const [name] of readFileSync(file, 'utf8').matchAll(/\bTIDEMARK_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!known.has(name) && !OTHER_ENV_PREFIXES.some((p) => name.startsWith(p))) unknown.add(name);
      }
    }
    // A new variable belongs in ENV (a setting) or OTHER_ENV_NAMES (lib/config/env.ts).
    expect([...unknown]).toEqual([]);
  });
});
