import type pg from 'pg';
import { classifyPgError, type PgErrorClass, sqlState } from './pg-errors.js';

/** A failed database call, classified once where it happened (see pg-errors.ts). */
export class DatabaseError extends Error {
  override name = 'DatabaseError';
  readonly kind: PgErrorClass;
  readonly sqlState: string | undefined;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? 'database error', { cause });
    this.kind = classifyPgError(cause);
    this.sqlState = sqlState(cause);
  }
}

export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * 'on' when this service rings the feed's doorbell itself after its writes commit (feed/doorbell.ts),
   * so its write transactions set orders.skip_notify and the trigger leaves out its NOTIFY.
   */
  readonly skipNotify: 'on' | 'off';
  /**
   * The longest this service's writes wait for a lock (`lock_timeout`, e.g. '5000ms'; '0': no limit of
   * its own), set per transaction: a row another program holds is answered 409 `locked` long before the
   * query timeout would call the database unreachable. Per transaction (`SET LOCAL`, `set_config(…, true)`),
   * never per session, so that it works through a transaction-mode pooler (Neon's -pooler, PgBouncer).
   */
  readonly lockTimeout: string;
}

/**
 * The only way the rest of the service talks to the pool: every error comes out as a DatabaseError,
 * so the HTTP layer can tell "the database is down" (503) from a bug (500) without looking at messages.
 */
export class Database implements Queryable {
  readonly skipNotify: 'on' | 'off';
  readonly lockTimeout: string;

  constructor(
    readonly pool: pg.Pool,
    options: { skipNotify?: boolean; lockTimeoutMs?: number } = {},
  ) {
    this.skipNotify = options.skipNotify ? 'on' : 'off';
    this.lockTimeout = `${Math.max(0, Math.floor(options.lockTimeoutMs ?? 0))}ms`;
  }

  async query<R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text as string, values);
    } catch (err) {
      throw new DatabaseError(err);
    }
  }

  /** Runs fn in a transaction; a thrown error rolls back (and a lost connection is not reused). */
  async transaction<T>(fn: (client: Queryable) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new DatabaseError(err);
    }
    const wrapped: Queryable = {
      skipNotify: this.skipNotify,
      lockTimeout: this.lockTimeout,
      async query<R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]) {
        try {
          return await client.query<R>(text as string, values);
        } catch (err) {
          throw new DatabaseError(err);
        }
      },
    };
    let broken: unknown;
    try {
      // One round trip: the settings are literals this class made (a skip flag, a whole number of ms).
      const settings = [`set_config('lock_timeout', '${this.lockTimeout}', true)`];
      if (this.skipNotify === 'on') settings.push(`set_config('orders.skip_notify', 'on', true)`);
      await wrapped.query(`${begin}; SELECT ${settings.join(', ')}`);
      const result = await fn(wrapped);
      await wrapped.query('COMMIT');
      return result;
    } catch (err) {
      if (err instanceof DatabaseError && err.kind === 'unavailable') broken = err;
      else await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr));
      throw err;
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  }
}
