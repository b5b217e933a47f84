import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { backoffDelay } from './contract/backoff.js';
import { openDatabaseServer } from './db/database-server.js';
import { serveClusterMetrics } from './ops/cluster-metrics.js';

/**
 * `WORKERS` above 1: this process becomes the primary. It owns the database server (starting the
 * embedded PostgreSQL when DATABASE_URL is unset) and runs that many workers, each a whole instance
 * (its own pool, listener, feed and hub) on the same port; node:cluster hands each new connection to
 * the next worker. A cursor is a database position, so a client resumes on whichever worker it
 * reaches, as it would on another instance behind a load balancer. The primary serves nothing itself:
 * it replaces a worker that dies, collects metrics for whichever worker is scraped, and on SIGTERM or
 * SIGINT asks every worker to drain, waits for them, then stops the database.
 */

/** Message a worker takes as "drain and exit" (a signal would be a second one after a terminal's ^C). */
export const SHUTDOWN_MESSAGE = 'orders:shutdown';

export function workerCount(setting: string): number {
  return setting === 'auto' ? availableParallelism() : Number(setting);
}

/** A worker that keeps dying is replaced ever more slowly, up to this. */
const MAX_RESTART_DELAY_MS = 30_000;

export async function runPrimary(config: Config, log: Logger, count: number): Promise<void> {
  const database = await openDatabaseServer(config, log);
  serveClusterMetrics();
  let stopping = false;
  let quickDeaths = 0;
  const env = { DATABASE_URL: database.url };

  const start = (): Worker => {
    const worker = cluster.fork(env);
    const startedAt = Date.now();
    worker.once('exit', (code, signal) => {
      if (stopping) return;
      quickDeaths = Date.now() - startedAt < 10_000 ? quickDeaths + 1 : 0;
      const delay = backoffDelay(quickDeaths, { minMs: 500, maxMs: MAX_RESTART_DELAY_MS, jitter: 0 });
      log.error({ event: 'worker.died', worker: worker.id, code, signal, restartInMs: delay }, 'a worker died; starting another');
      setTimeout(() => stopping || start(), delay).unref();
    });
    return worker;
  };
  for (let i = 0; i < count; i++) start();
  log.info({ workers: count, port: config.PORT, database: database.label }, `running ${count} workers on port ${config.PORT}`);

  const shutdown = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: stopping the workers now');
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      await database.stop();
      process.exit(1);
    }
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    log.info({ signal, workers: workers.length }, 'shutting down: every worker drains');
    const exits = workers.map((w) => new Promise<number>((resolve) => w.once('exit', (code) => resolve(code ?? 1))));
    for (const w of workers) if (w.isConnected()) w.send({ type: SHUTDOWN_MESSAGE });
    // Each worker bounds its own drain by SHUTDOWN_TIMEOUT_MS; this only covers one that hangs anyway.
    const force = setTimeout(() => {
      log.error('workers took too long to stop; killing them');
      for (const w of workers) w.process.kill('SIGKILL');
    }, config.SHUTDOWN_TIMEOUT_MS + 5000);
    const codes = await Promise.all(exits);
    clearTimeout(force);
    await database.stop();
    log.info('stopped');
    log.flush?.();
    setTimeout(() => process.exit(codes.every((c) => c === 0) ? 0 : 1), 50).unref();
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}
