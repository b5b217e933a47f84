import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type DatabaseServer, openDatabaseServer } from './database-server.js';
import { createPool } from './pool.js';

export interface CliDatabaseOptions {
  /** Shown in pg_stat_activity: which tool holds the connection. */
  applicationName: string;
  queryTimeoutMs: number;
}

/**
 * A command-line tool's database (`npm run db:migrate`, `npm run token`): the service's, sharing the
 * embedded one when a service already runs it, through a pool of one connection (a tool does one thing
 * at a time). Both are closed when `use` ends, whether it succeeds or throws.
 */
export async function withCliDatabase<T>(
  config: Config,
  log: Logger,
  options: CliDatabaseOptions,
  use: (pool: pg.Pool, server: DatabaseServer) => Promise<T>,
): Promise<T> {
  const server = await openDatabaseServer(config, log, { shareRunning: true });
  const pool = createPool({ connectionString: server.url, max: 1, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, ...options }, log);
  try {
    return await use(pool, server);
  } finally {
    await pool.end();
    await server.stop();
  }
}
