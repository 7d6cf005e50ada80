/**
 * The one place where every property test and fuzzer gets its seed (test/setup.ts calls
 * `configureFastCheck` in every test file). `TIDEMARK_FC_SEED` pins it; otherwise a random seed is
 * drawn. A failing property reports the seed and the command that replays it; a test that fails
 * otherwise after running a property (a timeout, an error outside the property) prints them too.
 * The seed alone replays a run; `TIDEMARK_FC_PATH` (read by the fuzzers' parameters, see fuzz.ts)
 * also skips to the shrunk counterexample.
 */
import path from 'node:path';
import fc from 'fast-check';
import { beforeEach, expect } from 'vitest';

function seedFromEnv(): number {
  const raw = process.env.TIDEMARK_FC_SEED?.trim();
  if (!raw) return (Math.random() * 2 ** 32) | 0;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed))
    throw new Error(`TIDEMARK_FC_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return seed | 0;
}

/** The seed of this test file's properties. */
export const FC_SEED = seedFromEnv();

/** The command that replays the current test with this seed. */
export function replayCommand(): string {
  const { testPath, currentTestName } = expect.getState();
  const file = testPath ? path.relative(process.cwd(), testPath) : '<test file>';
  const name = currentTestName ? ` -t ${JSON.stringify(currentTestName.split(' > ').at(-1))}` : '';
  return `TIDEMARK_FC_SEED=${FC_SEED} npx vitest run ${file}${name}`;
}

let propertyRan = false;

export function configureFastCheck(): void {
  fc.configureGlobal({
    ...fc.readConfigureGlobal(),
    seed: FC_SEED,
    reporter(details) {
      if (!details.failed) return;
      const message = fc.defaultReportMessage(details) ?? 'property failed';
      throw new Error(`${message}\nReplay: ${replayCommand()}`, {
        cause: details.errorInstance,
      });
    },
  });
  fc.installGlobalPlugin(
    fc.beforeEach(() => {
      propertyRan = true;
    }),
  );
  beforeEach(({ onTestFailed }) => {
    propertyRan = false;
    onTestFailed(() => {
      if (propertyRan) console.error(`[fast-check] seed ${FC_SEED}; replay: ${replayCommand()}`);
    });
  });
}
