import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { pruneChanges } from '../../src/feed/retention.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, type FeedClient, openClient, settle } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/** Retention never removes a change the feed has not handed out yet. */
let db: TestDatabase;
let svc: RunningService;
const clients: FeedClient[] = [];
const open: pg.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 30);
  svc = await startService(db.url);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

it('a count-limited pass does not prune changes held back by a running transaction', async () => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'watcher' });
  clients.push(c);
  const long = new pg.Client({ connectionString: db.url });
  open.push(long);
  await long.connect();
  await long.query('BEGIN');
  await long.query("INSERT INTO orders (customer_name, product_name) VALUES ('Long', 'Running')");
  // Committed, but behind the open transaction in feed order: not handed out yet.
  await db.sql.query("UPDATE orders SET notes = 'committed while the long one runs' WHERE id <= 20");
  await pruneChanges(svc.service.db, { maxAgeHours: 0, maxRows: 1 });
  await long.query('COMMIT');
  expect(await settle(db.sql, [c], 5000)).toEqual(cleanReports([c]));
  await waitFor(() => c.view.get(20)?.order.notes === 'committed while the long one runs');
  expect(c.resets).toEqual([]);
});

it('resets the clients of an instance that had not read changes another instance pruned', async () => {
  // This instance hears no doorbell and its timer is a minute away: it reads only when told to.
  const lagging = await startService(db.url, { FEED_POLL_MS: '60000', FEED_MEMORY_CHANGES: '0' });
  try {
    await lagging.service.listener.stop();
    const c = await openClient({ http: lagging.url, ws: lagging.wsUrl, name: 'lagging', autoResync: true });
    clients.push(c);
    await db.sql.query("UPDATE orders SET notes = 'pruned before the lagging instance read it' WHERE id <= 10");
    await pruneChanges(svc.service.db, { maxAgeHours: 0, maxRows: 1 });
    lagging.service.feed.requestRead();
    await waitFor(() => c.resets.length === 1, { message: 'a reset instead of a silent gap' });
    expect(c.resets).toMatchObject([{ reason: 'cursor-expired' }]);
    await waitFor(() => c.epochs.length === 2 && c.connected, { message: 'resynced' });
    await c.settledResync();
    expect(await settle(db.sql, [c], 8000)).toEqual(cleanReports([c]));
    expect(c.view.get(10)?.order.notes).toBe('pruned before the lagging instance read it');
  } finally {
    await Promise.all(clients.splice(0).map((x) => x.close()));
    await lagging.close();
  }
});
