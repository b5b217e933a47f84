import cluster from 'node:cluster';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type pg from 'pg';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '../db/database.js';
import { ApiError } from '../errors.js';
import { estimateChangeLogRows } from '../feed/change-log.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Listener } from '../feed/listener.js';
import type { Hub } from '../realtime/hub.js';
import { clusterMetrics, joinClusterMetrics } from './cluster-metrics.js';

export interface MetricsOptions {
  db: Database;
  pool: pg.Pool;
  feed: ChangeFeed;
  listener: Listener;
  hub: Hub;
}

/**
 * GET /metrics in Prometheus text format. One registry per app (not prom-client's global one), so
 * several instances in one process (tests) do not collide. Totals kept by the hub, feed and listener are
 * exported as counters by adding what grew since the last scrape.
 */
const metrics: FastifyPluginAsync<MetricsOptions> = async (app, { db, pool, feed, listener, hub }) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  if (cluster.isWorker) joinClusterMetrics(registry);

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route, method and status',
    labelNames: ['route', 'method', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe({ route, method: request.method, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  const totals = (name: string, help: string, read: () => number) => {
    let last = 0;
    return new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = read();
        if (now > last) this.inc(now - last);
        last = now;
      },
    });
  };
  totals('ws_frames_sent_total', 'WebSocket frames of changes sent', () => hub.stats.framesSent);
  totals('ws_frames_built_total', 'Broadcast frame builds (one per distinct view per batch)', () => hub.stats.framesBuilt);
  totals('ws_changes_sent_total', 'Changes delivered to WebSocket clients (changes × clients)', () => hub.stats.changesSent);
  totals('ws_slow_client_closes_total', 'Clients closed with 1013 for falling behind', () => hub.stats.slowClosed);
  totals('ws_resets_total', 'Clients sent `reset` (cursor expired, unknown or malformed)', () => hub.stats.resets);
  totals('ws_connections_total', 'WebSocket connections accepted', () => hub.stats.connectionsTotal);
  totals('feed_reads_total', 'Reads of the change log (queries; each instance reads after every burst)', () => feed.state.reads);
  totals('feed_changes_read_total', 'Changes handed out (read from the change log or from summaries)', () => feed.state.changesRead);
  totals('feed_summaries_total', 'Transactions handed out from their commit notification, without a read', () => feed.state.summaries);
  totals(
    'feed_summaries_refused_total',
    'Notifications shaped like summaries that did not verify (another generation, or forged: worth a look)',
    () => feed.state.summariesRefused,
  );
  totals('feed_read_errors_total', 'Failed reads of the change log', () => feed.state.readErrors);
  totals('listener_notifications_total', 'NOTIFY doorbells heard on the LISTEN connection', () => listener.state.notifications);
  totals('listener_reconnects_total', 'LISTEN connection failures followed by a reconnect attempt', () => listener.state.reconnects);

  new Gauge({
    name: 'ws_clients',
    help: 'WebSocket clients connected',
    registers: [registry],
    collect() {
      this.set(hub.stats.clients);
    },
  });
  new Gauge({
    name: 'feed_lag_seconds',
    help: 'When the last change was handed out: now minus its write time',
    registers: [registry],
    collect() {
      const lag = feed.state.lastLagMs;
      if (lag !== null) this.set(lag / 1000);
    },
  });
  new Gauge({
    name: 'listener_connected',
    help: '1 when the LISTEN connection is up (or deliberately idle), else 0',
    registers: [registry],
    collect() {
      this.set(listener.state.status === 'connected' || feed.state.idle ? 1 : 0);
    },
  });
  new Gauge({
    name: 'db_pool_connections',
    help: 'Pool connections by state',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'total' }, pool.totalCount);
      this.set({ state: 'idle' }, pool.idleCount);
      this.set({ state: 'waiting' }, pool.waitingCount);
    },
  });
  new Gauge({
    name: 'change_log_rows',
    help: "Rows in the change log (the planner's estimate: counting would scan it)",
    registers: [registry],
    async collect() {
      try {
        this.set(await estimateChangeLogRows(db));
      } catch {
        // The database is down; the other metrics still render.
      }
    },
  });

  app.get('/metrics', { config: { auth: 'admin' }, schema: { hide: true } }, async (_request, reply) => {
    if (!cluster.isWorker) return reply.type(registry.contentType).send(await registry.metrics());
    const text = await clusterMetrics().catch((err: Error) => {
      throw new ApiError('metrics-unavailable', `Every worker's metrics are needed: ${err.message}.`, {}, { 'retry-after': '1' });
    });
    return reply.type(registry.contentType).send(text);
  });
};

/** Not encapsulated: the timing hook must see every route of the app. */
export const metricsRoutes = fp(metrics, { name: 'metrics' });
