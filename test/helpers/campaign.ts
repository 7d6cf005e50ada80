import { expect } from 'vitest';
import type { CampaignReport } from '../../harness/campaign/campaign.ts';

/** What every sink must hold: exactly the fold's outputs. */
export function expectExactOutputs(report: CampaignReport): void {
  for (const v of Object.values(report.outputs)) {
    expect({
      sink: v.sink,
      lost: v.lost,
      duplicated: v.duplicated,
      uncommitted: v.uncommitted,
      unexpected: v.unexpected,
      outOfOrder: v.outOfOrder,
      seen: v.seen,
    }).toEqual({
      sink: v.sink,
      lost: 0,
      duplicated: 0,
      uncommitted: 0,
      unexpected: 0,
      outOfOrder: 0,
      seen: v.expected,
    });
  }
}
