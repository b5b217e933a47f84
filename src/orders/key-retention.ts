import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { pruneIdempotencyKeys } from './repository.js';

export interface KeyRetentionOptions {
  db: Database;
  log: Logger;
  /** A key older than this is forgotten: a retry after it is a new request (IDEMPOTENCY_TTL_HOURS). */
  ttlHours: number;
  intervalMs: number;
}

/**
 * Forgets idempotency keys past their time, in batches, every interval while running. The service
 * runs it only while the feed is awake: asleep, nothing may touch the database, so a Neon compute
 * can suspend (README, Neon). Not the feed's job: the change log and the keys age for different reasons.
 */
export class KeyRetention {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly options: KeyRetentionOptions) {}

  start(delayMs = 1000): void {
    if (this.running) return;
    this.running = true;
    this.schedule(delayMs);
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One pass: the keys removed. */
  async runOnce(): Promise<number> {
    const { db, log, ttlHours } = this.options;
    const removed = await pruneIdempotencyKeys(db, ttlHours);
    if (removed > 0) log.info({ event: 'idempotency.pruned', removedIdempotencyKeys: removed }, 'forgot expired idempotency keys');
    return removed;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(async () => {
      this.timer = null;
      try {
        await this.runOnce();
      } catch (err) {
        this.options.log.warn(
          { event: 'idempotency.prune_failed', reason: (err as Error).message },
          'pruning idempotency keys failed; will retry',
        );
      }
      if (this.running) this.schedule(this.options.intervalMs);
    }, delayMs);
    this.timer.unref();
  }
}
