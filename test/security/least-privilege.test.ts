import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TestFeedClient } from '../helpers/feed-client.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The service under the least-privilege role of deploy/least-privilege.sql (not a superuser, not the
 * owner), and another program that may write only `orders`: everything works, nothing is denied.
 */
let db: TestDatabase;
let svc: RunningService;
const lines: string[] = [];

function as(role: string, password: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  return url.toString();
}

beforeAll(async () => {
  db = await createTestDatabase();
  // Roles are cluster-wide; this file may run again on the same cluster.
  for (const role of ['orders_app', 'orders_writer']) {
    await db.sql.query(
      `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`,
    );
    await db.sql.query(`ALTER ROLE ${role} LOGIN NOSUPERUSER PASSWORD 'pw-${role}'`);
  }
  await db.sql.query(await readFile(path.join(import.meta.dirname, '../../deploy/least-privilege.sql'), 'utf8'));
  await db.sql.query('GRANT USAGE ON SCHEMA public TO orders_writer; GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO orders_writer');
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  svc = await startService(
    as('orders_app', 'pw-orders_app'),
    { DB_MIGRATE: 'true', FEED_RETENTION_MAX_ROWS: '2', FEED_RETENTION_INTERVAL_MS: '1000' },
    createLogger('info', false, sink),
  );
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

it('serves the API and the feed as orders_app, with writes by a program that may touch only orders', async () => {
  const who = (await svc.service.db.query<{ u: string; su: string }>("SELECT current_user AS u, current_setting('is_superuser') AS su"))
    .rows[0];
  expect(who).toEqual({ u: 'orders_app', su: 'off' });
  await waitFor(async () => (await http(svc.url, 'GET', '/readyz')).status === 200, { message: 'ready as orders_app' });

  const client = new TestFeedClient({ http: svc.url, ws: svc.wsUrl });
  await client.loadSnapshot();
  await client.connect();

  const key = { 'idempotency-key': 'least-privilege-1' };
  const created = await http<any>(svc.url, 'POST', '/orders', { customer_name: 'Least', product_name: 'Privilege' }, key);
  expect(created.status).toBe(201);
  expect((await http<any>(svc.url, 'POST', '/orders', { customer_name: 'Least', product_name: 'Privilege' }, key)).body.id).toBe(
    created.body.id,
  );
  expect((await http(svc.url, 'PATCH', `/orders/${created.body.id}`, { status: 'processing' })).status).toBe(200);
  expect((await http(svc.url, 'GET', '/orders/stats')).status).toBe(200);

  const writer = new pg.Client({ connectionString: as('orders_writer', 'pw-orders_writer') });
  await writer.connect();
  try {
    await writer.query("INSERT INTO orders (customer_name, product_name) VALUES ('Other', 'Program')");
    await expect(writer.query("INSERT INTO order_changes (op, order_id, version, row_data) VALUES ('insert', 1, 1, '{}')")).rejects.toThrow(
      /permission denied/,
    );
    // Its commit's summary is signed for it; the key it was signed with is not its to read (or forge with).
    await expect(writer.query('SELECT summary_key FROM feed_generation')).rejects.toThrow(/permission denied/);
  } finally {
    await writer.end();
  }
  expect((await http(svc.url, 'DELETE', `/orders/${created.body.id}`)).status).toBe(204);

  await waitFor(() => client.received.length >= 4, { message: 'four changes streamed' });
  expect(client.received.map((c) => c.op)).toEqual(['insert', 'update', 'insert', 'delete']);
  client.close();

  // Retention ran at least once as orders_app (2 rows kept at most), and nothing anywhere was denied.
  await waitFor(async () => (await db.sql.query('SELECT mark FROM order_changes_pruned')).rows[0].mark !== '1:1:', {
    message: 'retention pruned as orders_app',
  });
  expect(lines.filter((l) => /permission denied|"level":50/.test(l))).toEqual([]);
});
