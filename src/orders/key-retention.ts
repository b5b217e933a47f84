import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { PruningJob } from './pruning-job.js';
import { pruneIdempotencyKeys } from './repository.js';

export interface KeyRetentionOptions {
  db: Database;
  log: Logger;
  /** A key older than this is forgotten: a retry after it is a new request (IDEMPOTENCY_TTL_HOURS). */
  ttlHours: number;
  intervalMs: number;
}

/** Forgets idempotency keys past their time, in batches. Not the feed's job: the change log and the keys age for different reasons. */
export class KeyRetention extends PruningJob {
  constructor({ db, log, ttlHours, intervalMs }: KeyRetentionOptions) {
    super({ log, intervalMs, event: 'idempotency', what: 'expired idempotency keys', pass: () => pruneIdempotencyKeys(db, ttlHours) });
  }
}
