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
   * The longest this service's writes wait for a row lock (`lock_timeout`, e.g. '5000ms'; null: the
   * server's own setting), set per write transaction: a row another program holds is answered 409
   * `locked` long before the query timeout would call the database unreachable. Per transaction
   * (`set_config(…, true)`), never per session, so that it works through a transaction-mode pooler
   * (Neon's -pooler, PgBouncer). Reads (the CSV export, the feed) keep the server's setting.
   */
  readonly lockTimeout: string | null;
}

/**
 * The only way the rest of the service talks to the pool: every error comes out as a DatabaseError,
 * so the HTTP layer can tell "the database is down" (503) from a bug (500) without looking at messages.
 */
export class Database implements Queryable {
  readonly skipNotify: 'on' | 'off';
  readonly lockTimeout: string | null;

  constructor(
    readonly pool: pg.Pool,
    options: { skipNotify?: boolean; lockTimeoutMs?: number } = {},
  ) {
    this.skipNotify = options.skipNotify ? 'on' : 'off';
    const ms = Math.floor(options.lockTimeoutMs ?? 0);
    this.lockTimeout = ms > 0 ? `${ms}ms` : null;
  }

  async query<R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text as string, values);
    } catch (err) {
      throw new DatabaseError(err);
    }
  }

  /**
   * Runs fn in a transaction; a thrown error rolls back (and a lost connection is not reused). A `write`
   * transaction (the API's changes to orders) waits for row locks no longer than `lockTimeout`.
   */
  async transaction<T>(fn: (client: Queryable) => Promise<T>, { begin = 'BEGIN', write = false } = {}): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new DatabaseError(err);
    }
    const lockTimeout = write ? this.lockTimeout : null;
    const wrapped: Queryable = {
      skipNotify: this.skipNotify,
      lockTimeout,
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
      const settings: string[] = [];
      if (lockTimeout) settings.push(`set_config('lock_timeout', '${lockTimeout}', true)`);
      if (this.skipNotify === 'on') settings.push(`set_config('orders.skip_notify', 'on', true)`);
      await wrapped.query(settings.length ? `${begin}; SELECT ${settings.join(', ')}` : begin);
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
