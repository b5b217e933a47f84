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
}

/**
 * The only way the rest of the service talks to the pool: every error comes out as a DatabaseError,
 * so the HTTP layer can tell "the database is down" (503) from a bug (500) without looking at messages.
 */
export class Database implements Queryable {
  readonly skipNotify: 'on' | 'off';

  constructor(
    readonly pool: pg.Pool,
    options: { skipNotify?: boolean } = {},
  ) {
    this.skipNotify = options.skipNotify ? 'on' : 'off';
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
      await wrapped.query(this.skipNotify === 'on' ? `${begin}; SELECT set_config('orders.skip_notify', 'on', true)` : begin);
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
