import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../lib/config/config.ts';
import { ENV } from '../../lib/config/env.ts';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

describe('docs/configuration.md', () => {
  it('documents every environment variable with its default', () => {
    for (const [key, name] of Object.entries(ENV)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${name}\``));
      expect(row, `${name} is not documented`).toBeDefined();
      const def = (DEFAULTS as Record<string, unknown>)[key];
      if (def !== undefined) expect(row, `${name} default`).toContain(String(def));
    }
  });
});
