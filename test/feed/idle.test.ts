import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/**
 * Letting Neon sleep: with FEED_IDLE_DISCONNECT_MS set and nobody watching, the service holds no
 * connection to the database at all (no LISTEN, no keepalive, no polling, idle pool connections closed),
 * so a serverless compute can scale to zero. A client that comes back wakes it and misses nothing.
 */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];

const serviceConnections = async () =>
  (
    await db.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('orders-api', 'orders-listener')",
    )
  ).rows[0]?.n;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url, { FEED_IDLE_DISCONNECT_MS: '300', FEED_POLL_MS: '200' });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await svc?.close();
  await db?.drop();
});

it('disconnects from the database when no client is connected, and catches up when one returns', { timeout: 60_000 }, async () => {
  const first = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'before-sleep' });
  clients.push(first);
  await insertOrders(db.sql, 3);
  await waitFor(() => first.received.length === 3);
  await first.disconnect();

  await waitFor(async () => (await http<any>(svc.url, 'GET', '/readyz')).body.checks.listener.status === 'idle', {
    message: 'the listener goes idle',
  });
  // The pool closes idle connections after 10 s; then nothing of the service is left on the database.
  await waitFor(async () => (await serviceConnections()) === 0, { timeout: 20_000, interval: 250, message: 'no connection left' });
  // Health and readiness probes (a load balancer's, every few seconds) must not wake the database.
  for (let i = 0; i < 5; i++) {
    expect((await http(svc.url, 'GET', '/healthz')).status).toBe(200);
    const ready = await http<any>(svc.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.listener.status).toBe('idle');
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(await serviceConnections()).toBe(0);

  // Writes by other programs while the service sleeps.
  await insertOrders(db.sql, 4);
  await db.sql.query("UPDATE orders SET status = 'processing' WHERE id = (SELECT min(id) FROM orders)");

  await first.connect();
  await waitFor(() => svc.service.listener.state.status === 'connected', { message: 'the listener is back' });
  const fresh = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'after-sleep' });
  clients.push(fresh);
  await insertOrders(db.sql, 1);
  expect(await settle(db.sql, [first, fresh])).toEqual(cleanReports([first, fresh]));
  expect(first.received.length).toBe(3 + 4 + 1 + 1);
});
