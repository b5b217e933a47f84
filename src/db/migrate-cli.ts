import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { openDatabaseServer } from './database-server.js';
import { migrate } from './migrate.js';
import { createPool } from './pool.js';

/** `npm run db:migrate`: apply pending migrations to DATABASE_URL (or the embedded database) and exit. */
async function run(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const server = await openDatabaseServer(config, log, { shareRunning: true });
  const pool = createPool(
    {
      connectionString: server.url,
      max: 1,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      queryTimeoutMs: 600_000,
      applicationName: 'orders-migrate',
    },
    log,
  );
  try {
    const applied = await migrate(pool, log);
    log.info({ applied }, applied.length ? `applied ${applied.length} migration(s) to ${server.label}` : 'schema is up to date');
  } finally {
    await pool.end();
    await server.stop();
  }
}

run().catch((err: unknown) => {
  process.stderr.write(`db:migrate: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
