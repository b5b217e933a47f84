import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { withCliDatabase } from './cli-database.js';
import { migrate } from './migrate.js';

/** `npm run db:migrate`: apply pending migrations to DATABASE_URL (or the embedded database) and exit. */
async function run(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  await withCliDatabase(config, log, { applicationName: 'orders-migrate', queryTimeoutMs: 600_000 }, async (pool, server) => {
    const applied = await migrate(pool, log);
    log.info({ applied }, applied.length ? `applied ${applied.length} migration(s) to ${server.label}` : 'schema is up to date');
  });
}

run().catch((err: unknown) => {
  process.stderr.write(`db:migrate: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
