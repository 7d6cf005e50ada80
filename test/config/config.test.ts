import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig } from '../../lib/config/config.ts';
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
