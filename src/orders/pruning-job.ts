import type { Logger } from 'pino';

export interface PruningJobOptions {
  log: Logger;
  intervalMs: number;
  /** The log events' prefix: `<event>.pruned`, `<event>.prune_failed`. */
  event: string;
  /** What is forgotten, for the log lines ("expired idempotency keys"). */
  what: string;
  /** One pass; `running` turns false when the job is stopped (a long pass may end early). Resolves with the rows removed. */
  pass: (running: () => boolean) => Promise<number>;
}

/**
 * A table's own forgetting, every interval while started. The service starts it only while the feed is
 * awake: asleep, nothing may touch the database, so a Neon compute can suspend (README, Neon). Each
 * table ages for its own reasons on its own timer, so the change log's retention (feed/retention.ts)
 * neither waits for nor pays for the others.
 */
export class PruningJob {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly options: PruningJobOptions) {}

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

  /** One pass: the rows removed. */
  async runOnce(): Promise<number> {
    const { log, event, what, pass } = this.options;
    const removed = await pass(() => this.running);
    if (removed > 0) log.info({ event: `${event}.pruned`, removed }, `forgot ${what}`);
    return removed;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(async () => {
      this.timer = null;
      try {
        await this.runOnce();
      } catch (err) {
        const { log, event, what } = this.options;
        log.warn({ event: `${event}.prune_failed`, reason: (err as Error).message }, `forgetting ${what} failed; will retry`);
      }
      if (this.running) this.schedule(this.options.intervalMs);
    }, delayMs);
    this.timer.unref();
  }
}
