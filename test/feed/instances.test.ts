import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/** Several instances on one database: any of them serves any client, and a client can move between them. */
let db: TestDatabase;
const services: RunningService[] = [];
const clients: TestFeedClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 80);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(services.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await db?.drop();
});

it('delivers a write made through one instance to clients of the other', async () => {
  const a = await startService(db.url);
  // B's safety-net read is a minute away: only A's doorbell (a NOTIFY after its commit) can wake it.
  const b = await startService(db.url, { FEED_POLL_MS: '60000' });
  services.push(a, b);
  const onB = await openClient({ http: b.url, ws: b.wsUrl, name: 'on-b' });
  clients.push(onB);
  const created = await http(a.url, 'POST', '/orders', { customer_name: 'Through A', product_name: 'Seen on B' });
  expect(created.status).toBe(201);
  await waitFor(() => onB.view.has(created.body.id), { message: 'the order on B, woken by the doorbell', timeout: 15_000 });
  expect((await http(a.url, 'PATCH', `/orders/${created.body.id}`, { status: 'processing' })).status).toBe(200);
  expect(await settle(db.sql, [onB])).toEqual(cleanReports([onB]));
});

it('moves the clients of an instance that closes to the other one, with nothing lost', async () => {
  const a = await startService(db.url);
  const b = await startService(db.url);
  services.push(a, b);
  const moved = await Promise.all([0, 1, 2].map((i) => openClient({ http: a.url, ws: a.wsUrl, name: `moved-${i}` })));
  const stayed = await openClient({ http: b.url, ws: b.wsUrl, name: 'stayed' });
  clients.push(...moved, stayed);
  const writer = steadyWriter(db.sql, { perSecond: 100, durationMs: 3000 });
  await waitFor(() => writer.writes > 100);
  await a.close();
  for (const c of moved) expect(await c.waitClosed()).toBe(1012);
  await waitFor(() => writer.writes > 150);
  for (const c of moved) {
    c.http = b.url;
    c.wsUrl = b.wsUrl;
    await c.connect();
  }
  await writer.done;
  expect(await settle(db.sql, [...moved, stayed])).toEqual(cleanReports([...moved, stayed]));
  for (const c of moved) expect(new Set(c.hellos.map((h) => h.server)).size).toBe(2);
});

it('resumes on an instance that is behind the cursor (the cursor came from a faster instance)', async () => {
  const a = await startService(db.url);
  // B only reads on its timer, and hears no doorbell: it lags A.
  const b = await startService(db.url, { FEED_POLL_MS: '3000', LISTENER_KEEPALIVE_MS: '600000' });
  services.push(a, b);
  await b.service.listener.stop();
  const c = await openClient({ http: a.url, ws: a.wsUrl, name: 'ahead' });
  clients.push(c);
  await db.sql.query("UPDATE orders SET notes = 'seen on A' WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 5)");
  await waitFor(() => c.received.length === 5);
  await c.disconnect();
  c.http = b.url;
  c.wsUrl = b.wsUrl;
  await c.connect();
  await db.sql.query("UPDATE orders SET notes = 'after the move' WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 3)");
  expect(await settle(db.sql, [c], 10_000)).toEqual(cleanReports([c]));
});
