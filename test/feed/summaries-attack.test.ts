import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * Summaries (migrations/0014, feed/summary.ts) attacked as a hostile or unlucky user would: notifications
 * from a role with no privileges, replays, and writers that summarise in odd ways. A PostgreSQL of its own,
 * as in summaries.test.ts, and the safety-net poll slowed to a minute: a change a summary made the feed
 * skip would not come back within the test by a poll.
 */
let dir: string;
let postgres: EmbeddedPostgres;
let db: { url: string; sql: pg.Pool };
let svc: RunningService;
const clients: TestFeedClient[] = [];
const connections: pg.Client[] = [];

const feed = () => svc.service.feed;
const client = async (name: string) => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name });
  clients.push(c);
  return c;
};
const connection = async (url = db.url) => {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  connections.push(c);
  return c;
};
const insert = (sql: pg.Pool | pg.Client, customer: string, notes: string | null = null) =>
  sql.query<{ id: number }>("INSERT INTO orders (customer_name, product_name, quantity, notes) VALUES ($1, 'Attack', 1, $2) RETURNING id", [
    customer,
    notes ?? '',
  ]);
const keysOf = (c: TestFeedClient) => c.received.map((r) => r.key);

beforeAll(async () => {
  const log = pino({ level: 'silent' });
  dir = await mkdtemp(path.join(tmpdir(), 'orders-summaries-attack-'));
  postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
  db = { url: postgres.url, sql: new pg.Pool({ connectionString: postgres.url, max: 4 }) };
  db.sql.on('error', () => undefined);
  await migrate(db.sql, log);
  svc = await startService(db.url, { FEED_POLL_MS: '60000', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(connections.splice(0).map((c) => c.end().catch(() => undefined)));
});

afterAll(async () => {
  await svc?.close();
  await db?.sql.end();
  await postgres?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('delivers the changes a transaction makes silently after it has summarised itself (SET CONSTRAINTS ALL IMMEDIATE, then orders.skip_notify)', async () => {
  const watcher = await client('watcher');
  const c = await connection();
  await c.query('BEGIN');
  await c.query('SET CONSTRAINTS ALL IMMEDIATE');
  const a = (await insert(c, 'Summarised')).rows[0]?.id as number;
  await c.query("SELECT set_config('orders.skip_notify', 'on', true)");
  const b = (await insert(c, 'Silent, after the summary')).rows[0]?.id as number;
  await c.query('COMMIT');
  // A later transaction's summary says the first one has committed.
  const later = (await insert(db.sql, 'Later')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${later}:1`));
  expect(await settle(db.sql, [watcher], 3000)).toEqual(cleanReports([watcher]));
  expect(keysOf(watcher)).toEqual([`${a}:1`, `${b}:1`, `${later}:1`]);
});
