import { inject } from 'vitest';
import { configureFastCheck } from './helpers/fastCheck.ts';

// Every worker talks to the servers started by globalSetup, through the standard AWS variables.
Object.assign(process.env, inject('localEnv'), {
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_METRICS_DISABLED: 'true',
});

// Property tests and fuzzers: one seed per test file, from TIDEMARK_FC_SEED or drawn, reported on failure.
configureFastCheck();
