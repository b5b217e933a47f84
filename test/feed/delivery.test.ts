import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, type FeedClient, openClient, settle } from '../helpers/feed-client.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/** Delivery to connected clients: every committed change, from any writer, once, in feed order. */
let db: TestDatabase;
let svc: RunningService;
const clients: FeedClient[] = [];
const open: pg.Client[] = [];

const client = async (name: string) => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name });
  clients.push(c);
  return c;
};

/** A connection of its own, for transactions the test holds open. */
const connection = async () => {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
};

const xidOf = async (c: pg.Client) => Number((await c.query<{ x: string }>('SELECT txid_current() AS x')).rows[0]?.x);

beforeAll(async () => {
  db = await createTestDatabase();
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

describe('live delivery', () => {
  it('delivers writes through the API and by raw SQL from another connection to every connected client', async () => {
    await insertOrders(db.sql, 5);
    const all = await Promise.all(['a', 'b', 'c'].map(client));
    const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Ada', product_name: 'Engine', quantity: 2 });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    expect((await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'processing' })).status).toBe(200);
    await db.sql.query("UPDATE orders SET notes = 'changed by psql' WHERE id <= 3");
    await db.sql.query('DELETE FROM orders WHERE id = 4');
    expect((await http(svc.url, 'DELETE', `/orders/${id}`)).status).toBe(204);

    expect(await settle(db.sql, all)).toEqual(cleanReports(all));
    for (const c of all) {
      expect(c.view.get(1)?.order.notes).toBe('changed by psql');
      expect(c.view.get(4)?.deleted).toBe(true);
      expect(c.view.get(id)).toMatchObject({ deleted: true, version: 3 });
      expect(c.received.map((r) => r.op)).toEqual(['insert', 'update', 'update', 'update', 'update', 'delete', 'delete']);
    }
  });

  it('delivers a transaction that took its position early but committed late (out-of-order commit)', async () => {
    const [id] = await insertOrders(db.sql, 1);
    const watcher = await client('watcher');
    // A writes first, so its change gets the smaller seq, and stays open; B writes after and commits.
    // A reader that hands out `seq > last` would send B's change, move `last` past A's seq, and never
    // look at A's change again once A commits: that is the lost change this test catches. The feed
    // orders by (xid, seq) and reads only below the oldest running xid, so it waits for A instead.
    const a = await connection();
    await a.query('BEGIN');
    await a.query("UPDATE orders SET notes = 'A' WHERE id = $1", [id]);
    const b = await connection();
    await b.query("INSERT INTO orders (customer_name, product_name) VALUES ('B', 'B')");
    const seqs = await db.sql.query<{ seq: string }>('SELECT seq FROM order_changes ORDER BY seq DESC LIMIT 1');
    const naiveLast = Number(seqs.rows[0]?.seq);
    await a.query('COMMIT');
    const naiveAfter = await db.sql.query('SELECT seq FROM order_changes WHERE seq > $1', [naiveLast]);
    expect(naiveAfter.rowCount).toBe(0); // the naive reader has nothing left to read: A is lost to it

    expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
    expect(watcher.view.get(id as number)?.order.notes).toBe('A');
    expect(watcher.received.map((r) => r.op)).toEqual(['update', 'insert']);
  });

  it('ends at the final version when two transactions update one order with xids in the other order', async () => {
    const [id] = await insertOrders(db.sql, 1);
    const all = await Promise.all(['a', 'b'].map(client));
    const t1 = await connection();
    const t2 = await connection();
    await t1.query('BEGIN');
    const x1 = await xidOf(t1);
    await t2.query('BEGIN');
    const x2 = await xidOf(t2);
    expect(x1).toBeLessThan(x2);
    await t2.query("UPDATE orders SET notes = 'second xid, first commit' WHERE id = $1", [id]);
    await t2.query('COMMIT');
    await t1.query("UPDATE orders SET notes = 'first xid, last commit' WHERE id = $1", [id]);
    await t1.query('COMMIT');

    expect(await settle(db.sql, all)).toEqual(cleanReports(all));
    for (const c of all) {
      // Feed order is xid order: version 3 (t1) arrives before version 2 (t2), which the client ignores.
      expect(c.received.map((r) => r.version)).toEqual([3, 2]);
      expect(c.view.get(id as number)).toMatchObject({ version: 3, order: { notes: 'first xid, last commit' } });
    }
  });

  it('stalls behind a transaction held open for seconds, then delivers everything it held back', async () => {
    await insertOrders(db.sql, 20);
    const watcher = await client('watcher');
    const long = await connection();
    await long.query('BEGIN');
    // An insert: no row the other writers touch, so they run freely while it is open.
    await long.query("INSERT INTO orders (customer_name, product_name) VALUES ('Long', 'Transaction')");
    const longXid = await xidOf(long);
    const writer = steadyWriter(db.sql, { perSecond: 50, durationMs: 2500 });
    await writer.done;
    expect(writer.writes).toBeGreaterThan(50);
    // Held open for the whole time: nothing written after it has been handed out.
    expect(watcher.received.filter((r) => r.xid > longXid)).toEqual([]);
    await long.query('COMMIT');
    expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
    expect(watcher.received[0]?.xid).toBe(longXid);
    expect(watcher.received.length).toBeGreaterThan(50);
  });

  it('delivers a change held back by a transaction that never touches orders as soon as that transaction ends', async () => {
    // The safety-net read is a minute away; the blocker rings no doorbell when it ends. Only the feed
    // noticing that changes wait above the horizon, and looking again, can deliver this in time.
    const slow = await startService(db.url, { FEED_POLL_MS: '60000' });
    try {
      const watcher = await openClient({ http: slow.url, ws: slow.wsUrl, name: 'held-watcher' });
      clients.push(watcher);
      const blocker = await connection();
      await blocker.query('BEGIN');
      await xidOf(blocker);
      const [id] = (await insertOrders(db.sql, 1)) as [number];
      await new Promise((r) => setTimeout(r, 300));
      expect(watcher.view.has(id)).toBe(false);
      await blocker.query('ROLLBACK');
      await waitFor(() => watcher.view.has(id), { timeout: 10_000, message: 'the held-back change after the blocker ended' });
      expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
    } finally {
      await slow.close();
    }
  });

  it('delivers an order with 10,000 characters of notes', async () => {
    const watcher = await client('watcher');
    const notes = 'n'.repeat(5000) + 'é'.repeat(5000);
    const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Long', product_name: 'Notes', notes });
    expect(created.status).toBe(201);
    await db.sql.query('UPDATE orders SET quantity = 7 WHERE id = $1', [created.body.id]);
    expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
    const shown = watcher.view.get(created.body.id as number)?.order;
    expect(shown?.notes).toBe(notes);
    expect(shown?.quantity).toBe(7);
  });

  it('sends heartbeats with the current cursor when idle', async () => {
    const idle = await startService(db.url, { WS_HEARTBEAT_MS: '200' });
    try {
      const [id] = await insertOrders(db.sql, 1);
      const c = await openClient({ http: idle.url, ws: idle.wsUrl, name: 'idle' });
      clients.push(c);
      await db.sql.query("UPDATE orders SET notes = 'before idle' WHERE id = $1", [id]);
      await waitFor(() => c.received.length === 1 && c.heartbeats >= 2, { message: 'a change and two heartbeats' });
      expect(c.cursor).toBe(idle.service.feed.state.head);
      expect(await settle(db.sql, [c])).toEqual(cleanReports([c]));
      await c.close();
    } finally {
      await idle.close();
    }
  });
});
