import pg from 'pg';
import type { Logger } from 'pino';

export interface DbOptions {
  connectionString: string;
  max: number;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  applicationName: string;
}

// bigint columns (ids, totals, feed positions) as JS numbers: every value the schema allows fits
// below 2^53, and clients want `"id": 1`, not `"id": "1"`.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export function clientConfig(options: Omit<DbOptions, 'max'>): pg.ClientConfig {
  return {
    connectionString: options.connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs,
    query_timeout: options.queryTimeoutMs,
    application_name: options.applicationName,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types,
  };
}

/**
 * The pool for API queries and feed catch-up reads. A pooled client that loses its connection emits
 * 'error' while idle; without a listener that would crash the process, so it is logged and the pool
 * replaces the client on next use.
 */
export function createPool(options: DbOptions, log: Logger): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(options), max: options.max, idleTimeoutMillis: 10_000 });
  pool.on('error', (err) => {
    log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'idle database client lost');
  });
  pool.on('connect', (client) => {
    client.on('error', () => {
      // Already reported through the pool's 'error' event or the failing query.
    });
  });
  return pool;
}
