import { inject } from 'vitest';

// Every worker talks to the servers started by globalSetup, through the standard AWS variables.
Object.assign(process.env, inject('localEnv'), {
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_METRICS_DISABLED: 'true',
});
