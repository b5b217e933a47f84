import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { pruneHistory } from './history.js';

export interface HistoryRetentionOptions {
  db: Database;
  log: Logger;
  /** Entries older than this are forgotten (HISTORY_RETENTION_DAYS). */
  days: number;
  intervalMs: number;
}

/**
 * Forgets order history past HISTORY_RETENTION_DAYS, a batch per pass until none is left, while the feed
 * is awake (asleep, nothing may touch the database: README, Neon). Its own job, on its own table: the
 * change log's retention (feed/retention.ts) neither waits for it nor pays for it.
 */
export class HistoryRetention {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly options: HistoryRetentionOptions) {}

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

  /** One pass: the entries removed. */
  async runOnce(): Promise<number> {
    const { db, log, days } = this.options;
    let removed = 0;
    for (let n = await pruneHistory(db, days); n > 0 && this.running; n = await pruneHistory(db, days)) removed += n;
    if (removed > 0) log.info({ event: 'history.pruned', removedHistoryEntries: removed }, 'forgot order history past its retention');
    return removed;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(async () => {
      this.timer = null;
      try {
        await this.runOnce();
      } catch (err) {
        this.options.log.warn(
          { event: 'history.prune_failed', reason: (err as Error).message },
          'pruning order history failed; will retry',
        );
      }
      if (this.running) this.schedule(this.options.intervalMs);
    }, delayMs);
    this.timer.unref();
  }
}
