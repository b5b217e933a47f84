import cluster from 'node:cluster';
import { isLoopbackAddress } from './auth/hosts.js';
import { runPrimary, SHUTDOWN_MESSAGE, workerCount } from './cluster.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { DatabaseError } from './db/database.js';
import { type DatabaseServer, openDatabaseServer } from './db/database-server.js';
import { createLogger } from './logger.js';
import { createService, type Service } from './service.js';

/**
 * The process: read the configuration, bring up the database (the configured one, or an embedded
 * PostgreSQL in DATA_DIR), serve, and shut down gracefully on SIGINT/SIGTERM. With WORKERS above 1,
 * the first process supervises workers that each run this same file (cluster.ts).
 */
function fail(message: string): never {
  process.stderr.write(`orders: ${message}\n`);
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}

// A worker's lines say which one it is (WORKERS > 1).
const log = cluster.isWorker ? createLogger(config.LOG_LEVEL).child({ worker: cluster.worker?.id }) : createLogger(config.LOG_LEVEL);
let database: DatabaseServer | undefined;
let service: Service | undefined;
let shuttingDown = false;

async function shutdown(signal: string, code = 0): Promise<void> {
  if (shuttingDown) {
    log.warn({ signal }, 'second signal: exiting now');
    await database?.stop();
    process.exit(1);
  }
  shuttingDown = true;
  log.info({ signal }, 'shutting down: closing WebSockets with 1012, draining requests');
  const force = setTimeout(async () => {
    log.error('shutdown took too long; exiting');
    await database?.stop();
    process.exit(1);
  }, config.SHUTDOWN_TIMEOUT_MS);
  force.unref();
  try {
    await service?.close();
    await database?.stop();
  } catch (err) {
    log.error({ err }, 'error during shutdown');
    code = 1;
  }
  log.info('stopped');
  log.flush?.();
  setTimeout(() => process.exit(code), 50).unref();
}

process.on('unhandledRejection', (reason) => {
  log.error({ err: reason }, 'unhandled promise rejection');
});
process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception; stopping');
  void shutdown('uncaughtException', 1);
});

/**
 * An instance started while the database cannot be reached (restarting, a network blip, a failover)
 * waits for it, retrying each step of the start with capped backoff, instead of exiting: a rolling
 * restart or a crash restart during a database outage would otherwise leave the instance dead (found by
 * the soak, twice: once while creating the service, once at the auth check just after). Errors the
 * database answered (a failing migration, a missing privilege) still stop the start.
 */
async function whenTheDatabaseAnswers<T>(step: string, attemptStep: () => Promise<T>): Promise<T> {
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptStep();
    } catch (err) {
      if (shuttingDown || !(err instanceof DatabaseError) || err.kind !== 'unavailable') throw err;
      log.warn(
        { event: 'startup.database_unavailable', step, reason: err.message, attempt, retryInMs: delay },
        'the database cannot be reached; starting again when it can',
      );
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // A worker drains when its primary asks; a terminal's ^C also signals it directly, and that is one stop.
  process.on('message', (m: { type?: string }) => {
    if (m?.type === SHUTDOWN_MESSAGE && !shuttingDown) void shutdown('primary');
  });
  if (config.SHUTDOWN_TIMEOUT_MS <= config.DB_QUERY_TIMEOUT_MS)
    log.warn(
      {
        event: 'config.shutdown_timeout',
        SHUTDOWN_TIMEOUT_MS: config.SHUTDOWN_TIMEOUT_MS,
        DB_QUERY_TIMEOUT_MS: config.DB_QUERY_TIMEOUT_MS,
      },
      'SHUTDOWN_TIMEOUT_MS is not above DB_QUERY_TIMEOUT_MS: a stop may cut off a request still waiting on the database',
    );
  database = await openDatabaseServer(config, log);
  const databaseLabel = database.label;
  const url = database.url;
  const started = await whenTheDatabaseAnswers('service', () => createService(config, log, url));
  service = started;
  const authOn = await whenTheDatabaseAnswers('auth check', () => started.tokens.authRequired());
  if (
    !isLoopbackAddress(config.HOST) &&
    !config.ALLOW_UNAUTHENTICATED &&
    config.AUTH !== 'required' &&
    !service.tokens.credentialsConfigured
  ) {
    throw new Error(
      `refusing to serve ${config.HOST} without credentials: nobody could get in. Create a token (npm run token -- create --role admin --name you) or set AUTH_TOKENS; or bind HOST=127.0.0.1; or set AUTH=required to start locked and add tokens while it runs; or ALLOW_UNAUTHENTICATED=true if you really mean everyone to be admin`,
    );
  }
  const address = await service.app.listen({ host: config.HOST, port: config.PORT });
  const authLabel = authOn
    ? 'authentication on (bearer tokens)'
    : 'authentication OFF: no tokens configured, every caller is admin (fine for local use; see README, Security)';
  log.info(
    { url: address, database: databaseLabel, auth: authOn },
    `orders service listening on ${address} — database: ${databaseLabel} — ${authLabel}`,
  );
}

const workers = workerCount(config.WORKERS);
const run = cluster.isPrimary && workers > 1 ? () => runPrimary(config, log, workers) : main;
run().catch(async (err: unknown) => {
  log.fatal({ err }, 'cannot start');
  await service?.close().catch(() => undefined);
  await database?.stop().catch(() => undefined);
  log.flush?.();
  fail(err instanceof Error ? err.message : String(err));
});
