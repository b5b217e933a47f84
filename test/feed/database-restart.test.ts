import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/**
 * The database stopped and started again under the service, mid-stream: a private PostgreSQL (the
 * shared one serves the other test files), on the same port, same data folder.
 */
const log = pino({ level: 'silent' });
let dir: string;
let postgres: EmbeddedPostgres;
let sql: pg.Pool;
let svc: RunningService | undefined;
const clients: TestFeedClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'orders-feed-restart-'));
  postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
  sql = new pg.Pool({ connectionString: postgres.url, max: 4 });
  sql.on('error', () => undefined);
  await migrate(sql, log);
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await svc?.close();
  await sql?.end();
  await postgres?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('delivers every committed change when the database is stopped and restarted mid-stream', async () => {
  await insertOrders(sql, 50);
  svc = await startService(postgres.url, {
    LISTENER_BACKOFF_MIN_MS: '50',
    LISTENER_BACKOFF_MAX_MS: '300',
    DB_CONNECT_TIMEOUT_MS: '1000',
    FEED_POLL_MS: '300',
  });
  const s = svc;
  clients.push(...(await Promise.all([0, 1, 2].map((i) => openClient({ http: s.url, ws: s.wsUrl, name: `client-${i}` })))));
  const writer = steadyWriter(sql, { perSecond: 100, durationMs: 6000, workers: 2 });
  await waitFor(() => writer.writes > 100, { message: 'writes before the restart' });
  await postgres.stop();
  postgres = await startEmbeddedPostgres({ dataDir: dir, port: postgres.port, log });
  const writesAtRestart = writer.writes;
  await waitFor(() => writer.writes > writesAtRestart + 100, { timeout: 15_000, message: 'writes after the restart' });
  await writer.stop();
  expect(writer.failures).toBeGreaterThan(0);
  await waitFor(() => s.service.listener.state.status === 'connected', { message: 'the listener reconnected' });
  expect(s.service.listener.state.reconnects).toBeGreaterThanOrEqual(1);
  // The clients' WebSockets never dropped: the service rode out the restart.
  for (const c of clients) expect(c.connected).toBe(true);
  // A clean restart keeps the history (unlike a crash, test/feed/crash-restart.test.ts): nobody resets.
  for (const c of clients) expect(c.resets).toEqual([]);
  expect(await settle(sql, clients, 20_000)).toEqual(cleanReports(clients));
});
