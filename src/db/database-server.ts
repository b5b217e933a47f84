import type { Logger } from 'pino';
import { type Config, redactUrl } from '../config.js';
import { startEmbeddedPostgres } from './embedded.js';

/** The PostgreSQL a process talks to: DATABASE_URL's, or an embedded one started in DATA_DIR. */
export interface DatabaseServer {
  url: string;
  /** For people: the host without the password, or where the embedded one lives. */
  label: string;
  /** Stops the embedded PostgreSQL (nothing to do for DATABASE_URL). */
  stop(): Promise<void>;
}

/**
 * `shareRunning` (the CLIs): when a running service owns the embedded database, use it rather than
 * refusing; stop() then leaves it to its owner.
 */
export async function openDatabaseServer(config: Config, log: Logger, { shareRunning = false } = {}): Promise<DatabaseServer> {
  if (config.DATABASE_URL) {
    return { url: config.DATABASE_URL, label: redactUrl(config.DATABASE_URL), stop: async () => undefined };
  }
  const embedded = await startEmbeddedPostgres({ dataDir: config.DATA_DIR, port: config.EMBEDDED_PG_PORT, log, shareRunning });
  return {
    url: embedded.url,
    label: `embedded PostgreSQL in ${embedded.dataDir} (port ${embedded.port})`,
    stop: () => embedded.stop(),
  };
}
