import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { pruneHistory } from './history.js';
import { PruningJob } from './pruning-job.js';

export interface HistoryRetentionOptions {
  db: Database;
  log: Logger;
  /** Entries older than this are forgotten (HISTORY_RETENTION_DAYS). */
  days: number;
  intervalMs: number;
}

/** Forgets order history past HISTORY_RETENTION_DAYS, a batch at a time until none is left. */
export class HistoryRetention extends PruningJob {
  constructor({ db, log, days, intervalMs }: HistoryRetentionOptions) {
    super({
      log,
      intervalMs,
      event: 'history',
      what: 'order history past its retention',
      pass: async (running) => {
        let removed = 0;
        for (let n = await pruneHistory(db, days); n > 0 && running(); n = await pruneHistory(db, days)) removed += n;
        return removed;
      },
    });
  }
}
