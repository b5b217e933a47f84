import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Database } from '../db/database.js';
import { pendingMigrations } from '../db/migrate.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Listener } from '../feed/listener.js';
import type { Hub } from '../realtime/hub.js';

export interface HealthOptions {
  db: Database;
  feed: ChangeFeed;
  listener: Listener;
  hub: Hub;
  /** True once a graceful stop has begun: /readyz then answers 503 so that no new traffic is sent here. */
  draining: () => boolean;
  /** Whether this caller may see the details (feed head, client counts, listener errors): admins, or anyone when authentication is off. */
  mayReadDetails: (request: FastifyRequest) => Promise<boolean>;
}

/**
 * /healthz: the process is alive and serving. /readyz: it can do its job: the database answers, the
 * schema is complete, and the listener is connected (or deliberately asleep because nobody is
 * watching). Both list their checks so an operator sees which one failed. The checks' details (feed
 * position, client counts, the listener's last error) are for admins: anonymous probes get each
 * check's ok and nothing else. Once a graceful stop has begun, /readyz is 503 (`shutdown`).
 */
type Checks = Record<string, { ok: boolean; detail?: string; [k: string]: unknown }>;

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { db, feed, listener, hub, draining, mayReadDetails }) => {
  const checkDatabase = async (checks: Checks) => {
    try {
      const pending = await pendingMigrations(db.pool);
      checks.database = { ok: true };
      checks.migrations = pending.length ? { ok: false, detail: `pending: ${pending.join(', ')}` } : { ok: true };
    } catch (err) {
      checks.database = { ok: false, detail: (err as Error).message };
      checks.migrations = { ok: false, detail: 'database unreachable' };
    }
  };

  app.get('/healthz', async () => ({ status: 'ok', uptime_s: Math.round(process.uptime()) }));

  app.get('/readyz', async (request, reply) => {
    const checks: Checks = {};
    if (feed.state.idle) {
      // Asleep so that a serverless database can scale to zero: a readiness probe must not wake it.
      checks.database = { ok: true, detail: 'not checked while idle (FEED_IDLE_DISCONNECT_MS)' };
      checks.migrations = { ok: true, detail: 'not checked while idle' };
    } else {
      await checkDatabase(checks);
    }
    const l = listener.state;
    const f = feed.state;
    checks.listener = {
      ok: l.status === 'connected' || f.idle,
      status: f.idle ? 'idle' : l.status,
      since: new Date(l.since).toISOString(),
      reconnects: l.reconnects,
      last_error: l.lastError,
      next_attempt_at: l.nextAttemptAt ? new Date(l.nextAttemptAt).toISOString() : null,
    };
    checks.feed = {
      ok: true,
      head: f.head,
      last_change_at: f.lastChangeAt ? new Date(f.lastChangeAt).toISOString() : null,
      last_lag_ms: f.lastLagMs,
      read_errors: f.readErrors,
    };
    checks.websocket = { ok: true, ...hub.stats };
    checks.shutdown = draining() ? { ok: false, detail: 'stopping (SIGTERM): draining requests' } : { ok: true };
    const ready = Object.values(checks).every((c) => c.ok);
    const shown = (await mayReadDetails(request).catch(() => false))
      ? checks
      : Object.fromEntries(Object.entries(checks).map(([name, c]) => [name, { ok: c.ok }]));
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: shown });
  });
};
