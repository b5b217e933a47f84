import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Database, Queryable } from '../../src/db/database.js';
import { pruneChanges } from '../../src/feed/retention.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/**
 * Retention never removes a change the feed has not handed out yet, nor one a resumable cursor lacks
 * without that cursor being reset (guarantee 5); by time it prunes exactly what is older than the window,
 * by count exactly what is beyond the newest N, through indexes (guarantee 10).
 */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];
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

it('a count-limited pass does not prune the changes of a running transaction', async () => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'watcher' });
  clients.push(c);
  const long = new pg.Client({ connectionString: db.url });
  open.push(long);
  await long.connect();
  await long.query('BEGIN');
  await long.query("INSERT INTO orders (customer_name, product_name) VALUES ('Long', 'Running')");
  // Committed while the long one runs. With snapshot cursors it is handed out at once (nothing holds it
  // back any more); pruning a committed change before the feed read it would reset the feed's clients
  // instead (the next test), so this one waits until it is out, and prunes around the running one.
  await db.sql.query("UPDATE orders SET notes = 'committed while the long one runs' WHERE id <= 20");
  await waitFor(() => c.view.get(20)?.order.notes === 'committed while the long one runs', { message: 'handed out' });
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

/** The transaction ids of the changes to these orders, by order id. */
async function xidsOf(ids: number[]): Promise<Map<number, number>> {
  const { rows } = await db.sql.query<{ order_id: string; xid: string }>(
    'SELECT order_id, xid FROM order_changes WHERE order_id = ANY($1::bigint[])',
    [ids],
  );
  return new Map(rows.map((r) => [Number(r.order_id), Number(r.xid)]));
}

it('an age pass prunes exactly the changes older than the window, whatever their transaction ids', async () => {
  // The young transaction takes its xid first, but writes and commits after the old one.
  const young = new pg.Client({ connectionString: db.url });
  open.push(young);
  await young.connect();
  await young.query('BEGIN');
  await young.query('SELECT txid_current()');
  const [oldId] = await insertOrders(db.sql, 1, 'old');
  const { rows } = await young.query<{ id: string }>(
    "INSERT INTO orders (customer_name, product_name, notes) VALUES ('Young', 'Order', 'young') RETURNING id",
  );
  await young.query('COMMIT');
  const youngId = Number(rows[0]?.id);
  const xids = await xidsOf([oldId as number, youngId]);
  expect(xids.get(youngId)).toBeLessThan(xids.get(oldId as number) as number);
  // As the table's owner: the old change was written two days ago, the young one an hour ago.
  await db.sql.query("UPDATE order_changes SET changed_at = now() - interval '2 days' WHERE order_id = $1", [oldId]);
  await db.sql.query("UPDATE order_changes SET changed_at = now() - interval '1 hour' WHERE order_id = $1", [youngId]);
  const before = await db.sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM order_changes WHERE changed_at >= now() - interval '24 hours'",
  );
  await pruneChanges(svc.service.db, { maxAgeHours: 24, maxRows: 0 });
  const after = await xidsOf([oldId as number, youngId]);
  expect(after.has(oldId as number)).toBe(false);
  expect(after.get(youngId)).toBe(xids.get(youngId));
  // Nothing younger than the window went, and nothing older stayed.
  const counts = await db.sql.query<{ young: number; old: number }>(`
    SELECT count(*) FILTER (WHERE changed_at >= now() - interval '24 hours')::int AS young,
           count(*) FILTER (WHERE changed_at < now() - interval '24 hours')::int AS old
    FROM order_changes`);
  expect(counts.rows[0]).toEqual({ young: before.rows[0]?.n, old: 0 });
});

async function expectCountPassKeepsNewest(n: number): Promise<void> {
  const { rows: newest } = await db.sql.query<{ seq: string }>('SELECT seq FROM order_changes ORDER BY seq DESC LIMIT $1', [n]);
  await pruneChanges(svc.service.db, { maxAgeHours: 0, maxRows: n });
  const { rows: left } = await db.sql.query<{ seq: string }>('SELECT seq FROM order_changes ORDER BY seq DESC');
  expect(left.map((r) => r.seq)).toEqual(newest.map((r) => r.seq));
}

it('a count pass keeps exactly the newest N changes by seq', async () => {
  await insertOrders(db.sql, 5, 'count');
  await db.sql.query("UPDATE orders SET notes = 'counted' WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 5)");
  await expectCountPassKeepsNewest(8);
});

// A rolled-back (or failed) write consumes seqs too: the cut is the (N+1)-th newest change, not max(seq) - N.
it('a count pass keeps exactly the newest N changes by seq, even with gaps in seq (rolled-back writes)', async () => {
  await insertOrders(db.sql, 5, 'count');
  const aborted = new pg.Client({ connectionString: db.url });
  open.push(aborted);
  await aborted.connect();
  await aborted.query('BEGIN');
  await aborted.query("UPDATE orders SET notes = 'rolled back' WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 5)");
  await aborted.query('ROLLBACK');
  await db.sql.query("UPDATE orders SET notes = 'after the rollback' WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 5)");
  await expectCountPassKeepsNewest(8);
});

it('the pruning statement finds its rows through the changed_at and seq indexes, never scanning the table', async () => {
  // The statement pruneChanges sends, captured from a stand-in database (it prunes nothing there).
  const sent: { text: string; values?: unknown[] }[] = [];
  const capture = {
    skipNotify: 'off',
    transaction: async (fn: (tx: Queryable) => Promise<unknown>) =>
      fn({
        skipNotify: 'off',
        lockTimeout: null,
        query: (async (text: string, values?: unknown[]) => {
          sent.push({ text, values });
          return { rows: /FOR UPDATE/.test(text) ? [{ mark: '1:1:' }] : [{ snapshot: '1:1:', max_xid: null, n: 0 }] };
        }) as Queryable['query'],
      }),
  } as unknown as Database;
  await pruneChanges(capture, { maxAgeHours: 24, maxRows: 10 });
  const prune = sent.find((s) => /DELETE/i.test(s.text));
  if (!prune) throw new Error('no DELETE sent');
  // The count cut walks the seq index back from the newest (an OFFSET of maxRows on that index, and only
  // when the log's seq span exceeds the limit); the age cut is a range on changed_at.
  const conn = await db.sql.connect();
  let plan: string;
  try {
    await conn.query('BEGIN');
    // Whether the indexes can serve it, not what the planner prefers for a table this small.
    await conn.query('SET LOCAL enable_seqscan = off');
    const { rows } = await conn.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${prune.text}`, prune.values);
    plan = rows.map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await conn.query('ROLLBACK');
    conn.release();
  }
  expect(plan).toContain('order_changes_changed_at_idx');
  expect(plan).toContain('order_changes_seq_idx');
  expect(plan).not.toMatch(/Seq Scan on order_changes/);
});
