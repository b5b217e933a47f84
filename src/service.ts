import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { authRequiredFromStart } from './auth/hosts.js';
import { parseEnvTokens, TokenStore } from './auth/tokens.js';
import type { Config } from './config.js';
import { Database, DatabaseError } from './db/database.js';
import { migrate } from './db/migrate.js';
import { clientConfig, createPool } from './db/pool.js';
import { readMark, readNextXid } from './feed/change-log.js';
import { Doorbell } from './feed/doorbell.js';
import { ChangeFeed } from './feed/feed.js';
import { Listener } from './feed/listener.js';
import { HistoryRetention } from './orders/history-retention.js';
import { KeyRetention } from './orders/key-retention.js';
import { Hub } from './realtime/hub.js';

/** Everything one instance runs, wired together; started and stopped as a unit. */
export interface Service {
  app: FastifyInstance;
  pool: pg.Pool;
  db: Database;
  listener: Listener;
  feed: ChangeFeed;
  hub: Hub;
  tokens: TokenStore;
  /** Graceful: stop listening, close WebSockets with 1012, drain HTTP, stop the listener, close the pool. */
  close(): Promise<void>;
}

export async function createService(config: Config, log: Logger, databaseUrl: string): Promise<Service> {
  const dbOptions = {
    connectionString: databaseUrl,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    applicationName: 'orders-api',
  };
  const pool = createPool({ ...dbOptions, max: config.DB_POOL_MAX }, log);
  const db = new Database(pool, { skipNotify: config.FEED_SERVICE_DOORBELL, lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS });
  try {
    if (config.DB_MIGRATE) await migrate(pool, log);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err instanceof DatabaseError ? err : new DatabaseError(err);
  }
  const listener = new Listener({
    clientConfig: clientConfig({
      ...dbOptions,
      connectionString: config.DATABASE_LISTEN_URL ?? databaseUrl,
      applicationName: 'orders-listener',
      queryTimeoutMs: 0,
    }),
    keepaliveMs: config.LISTENER_KEEPALIVE_MS,
    keepaliveTimeoutMs: config.LISTENER_KEEPALIVE_TIMEOUT_MS,
    backoffMinMs: config.LISTENER_BACKOFF_MIN_MS,
    backoffMaxMs: config.LISTENER_BACKOFF_MAX_MS,
    log: log.child({ component: 'listener' }),
  });
  const feed = new ChangeFeed({
    db,
    listener,
    ...(config.FEED_SERVICE_DOORBELL ? { doorbell: new Doorbell(db, log.child({ component: 'doorbell' })) } : {}),
    log: log.child({ component: 'feed' }),
    pollMs: config.FEED_POLL_MS,
    batchSize: config.FEED_BATCH_SIZE,
    memoryChanges: config.FEED_MEMORY_CHANGES,
    idleDisconnectMs: config.FEED_IDLE_DISCONNECT_MS,
    retention: {
      maxAgeHours: config.FEED_RETENTION_HOURS,
      maxRows: config.FEED_RETENTION_MAX_ROWS,
      intervalMs: config.FEED_RETENTION_INTERVAL_MS,
    },
  });
  const keyRetention = new KeyRetention({
    db,
    log: log.child({ component: 'orders' }),
    ttlHours: config.IDEMPOTENCY_TTL_HOURS,
    intervalMs: config.FEED_RETENTION_INTERVAL_MS,
  });
  const historyRetention = new HistoryRetention({
    db,
    log: log.child({ component: 'orders' }),
    days: config.HISTORY_RETENTION_DAYS,
    intervalMs: config.FEED_RETENTION_INTERVAL_MS,
  });
  feed.on('awake', () => {
    keyRetention.start();
    historyRetention.start();
  });
  feed.on('asleep', () => {
    keyRetention.stop();
    historyRetention.stop();
  });
  const tokens = new TokenStore({
    db,
    envTokens: parseEnvTokens(config.AUTH_TOKENS),
    cacheMs: config.AUTH_CACHE_MS,
    required: authRequiredFromStart(config),
    log: log.child({ component: 'auth' }),
  });
  // Learn at once whether authentication is on: readiness probes read the last known answer only.
  await tokens.authRequired().catch(() => undefined);
  const hub = new Hub({
    feed,
    log: log.child({ component: 'hub' }),
    heartbeatMs: config.WS_HEARTBEAT_MS,
    pingMs: config.WS_PING_MS,
    maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
    catchUpStallMs: config.WS_CATCH_UP_STALL_MS,
    maxMessagesPerSec: config.WS_MAX_MESSAGES_PER_SEC,
    cursorBounds: async () => ({ mark: await readMark(db), nextXid: await readNextXid(db) }),
    maxPerPrincipal: config.WS_MAX_CONNECTIONS_PER_TOKEN,
    maxPerAddress: config.WS_MAX_CONNECTIONS_PER_ADDRESS,
    maxViews: config.WS_MAX_VIEWS,
    broadcastShare: config.WS_BROADCAST_PERCENT / 100,
    revokedPrincipals: (ids) => tokens.revoked(ids),
    revocationCheckMs: Math.max(1000, config.AUTH_CACHE_MS),
  });
  const { app, drain } = await buildApp({ config, log, db, feed, listener, hub, tokens });
  try {
    await feed.start();
  } catch (err) {
    await hub.close(0);
    await app.close();
    await feed.stop();
    await pool.end().catch(() => undefined);
    throw err instanceof DatabaseError ? err : new DatabaseError(err);
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    pool,
    db,
    listener,
    feed,
    hub,
    tokens,
    close() {
      // The order matters behind a load balancer (http/drain.ts): stop taking work, stop listening,
      // then close WebSockets (their reconnects go elsewhere), then let the requests already here finish.
      closing ??= (async () => {
        drain.start();
        hub.stopAccepting();
        drain.stopListening();
        await hub.close();
        await drain.settle(Date.now() + Math.max(1000, config.SHUTDOWN_TIMEOUT_MS - 2000));
        await app.close();
        await feed.stop();
        await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
