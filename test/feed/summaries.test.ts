import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { usePrivateCluster } from '../helpers/fixtures.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * A small transaction's commit notification carries its changes (migrations/0014, feed/summary.ts): the
 * feed hands them out without reading the log when it can tell that is safe, and reads when it cannot.
 * The safety-net poll is slowed down and retention (whose pass takes a transaction id) is off here, and
 * the file has a PostgreSQL of its own: transaction ids are the cluster's, and another file's writes
 * (in another database of a shared cluster) would make the feed read, rightly, as it cannot know they
 * did not touch orders. So every read counted is one the feed chose for this file's writes.
 */
const { db, svc } = usePrivateCluster({ FEED_POLL_MS: '60000', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' });
const clients: TestFeedClient[] = [];
const connections: pg.Client[] = [];
const sockets: WebSocket[] = [];

const feed = () => svc.service.feed;
const client = async (name: string) => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name });
  clients.push(c);
  return c;
};
const connection = async () => {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  connections.push(c);
  return c;
};
const insert = (sql: pg.Pool | pg.Client, customer: string) =>
  sql.query<{ id: number }>("INSERT INTO orders (customer_name, product_name, quantity) VALUES ($1, 'Summary', 1) RETURNING id", [
    customer,
  ]);
const keysOf = (c: TestFeedClient) => c.received.map((r) => r.key);

/** What a client resuming from `after` receives in half a second. */
function resume(after: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const ws = new WebSocket(`${svc.wsUrl}?after=${encodeURIComponent(after)}`, { perMessageDeflate: false });
    sockets.push(ws);
    const got: string[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'changes') for (const ch of m.changes) got.push(`${ch.order.id}:${ch.order.version}`);
      if (m.type === 'reset') reject(new Error(`reset: ${d.toString()}`));
    });
    setTimeout(() => resolve(got), 500);
  });
}

/** Waits until the feed has been quiet (no read, nothing handed out) for a moment: its reads are then ours to count. */
async function quiet(): Promise<void> {
  let last = '';
  await waitFor(async () => {
    const s = feed().state;
    const now = `${s.reads}/${s.changesRead}`;
    const same = now === last;
    last = now;
    if (!same) await sleep(150);
    return same;
  });
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(connections.splice(0).map((c) => c.end().catch(() => undefined)));
});

it('hands a raw SQL transaction to clients from its commit notification, without a read, in the bytes a read gives', async () => {
  const raw: string[] = [];
  const ws = new WebSocket(svc.wsUrl, { perMessageDeflate: false });
  sockets.push(ws);
  ws.on('message', (d) => raw.push(d.toString()));
  await waitFor(() => raw.some((m) => m.includes('"hello"')));
  const watcher = await client('watcher');
  await quiet();
  const { reads, summaries } = feed().state;

  const id = (await insert(db.sql, 'Told by its commit')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${id}:1`));
  expect(feed().state.reads).toBe(reads);
  expect(feed().state.summaries).toBe(summaries + 1);
  const { rows } = await db.sql.query<{ json: string }>('SELECT order_change_json(c) AS json FROM order_changes c WHERE order_id = $1', [
    id,
  ]);
  await waitFor(() => raw.some((m) => m.includes(rows[0]?.json as string)));

  // A transaction of several changes: one notification, one message, still without a read.
  const heard = svc.service.listener.state.notifications;
  const c = await connection();
  await c.query('BEGIN');
  const more: number[] = [];
  for (let i = 0; i < 4; i++) more.push((await insert(c, `Batch ${i}`)).rows[0]?.id as number);
  await c.query("UPDATE orders SET notes = 'same transaction' WHERE id = $1", [more[0]]);
  await c.query('COMMIT');
  await waitFor(() => keysOf(watcher).includes(`${more[0]}:2`));
  expect(feed().state.reads).toBe(reads);
  expect(svc.service.listener.state.notifications).toBe(heard + 1);
  const message = watcher.messages.find((m) => m.keys.includes(`${more[0]}:2`));
  expect(message?.keys).toEqual([...more.map((o) => `${o}:1`), `${more[0]}:2`]);
  expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
});

it('reads the log for a transaction too large for a notification, and delivers it whole', async () => {
  const watcher = await client('watcher');
  await quiet();
  const { reads } = feed().state;
  await db.sql.query(
    "INSERT INTO orders (customer_name, product_name, quantity) SELECT 'Bulk ' || g, 'Summary', 1 FROM generate_series(1, 200) g",
  );
  await waitFor(() => watcher.received.length >= 200);
  expect(feed().state.reads).toBeGreaterThan(reads);
  expect(watcher.messages.filter((m) => m.keys.length > 0 && !m.more).length).toBe(1);
  expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
});

it('hands out transactions that commit out of xid order, each once, and a cursor between them resumes exactly', async () => {
  const watcher = await client('watcher');
  await quiet();
  const { reads } = feed().state;
  const early = await connection();
  await early.query('BEGIN');
  const first = (await insert(early, 'Began first, commits last')).rows[0]?.id as number;
  const second = (await insert(db.sql, 'Began second, commits first')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${second}:1`));
  const between = watcher.cursor as string;
  await early.query('COMMIT');
  await waitFor(() => keysOf(watcher).includes(`${first}:1`));
  expect(feed().state.reads).toBe(reads);

  // From the cursor the first message left: the transaction still running then, and nothing else.
  expect(await resume(between)).toEqual([`${first}:1`]);
  expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
});

it('keeps a row’s changes in order when the one before was never announced (the feed reads first)', async () => {
  const watcher = await client('watcher');
  const id = (await insert(db.sql, 'Ordered')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${id}:1`));
  await quiet();
  const { reads } = feed().state;
  // A write that rings no doorbell and sends no summary (as the service's own writes do, before they ring
  // for themselves), then one on top of it from another program: its summary must not go out first.
  const c = await connection();
  await c.query('BEGIN');
  await c.query("SELECT set_config('orders.skip_notify', 'on', true)");
  await c.query("UPDATE orders SET notes = 'silent' WHERE id = $1", [id]);
  await c.query('COMMIT');
  await db.sql.query("UPDATE orders SET notes = 'announced' WHERE id = $1", [id]);
  await waitFor(() => keysOf(watcher).includes(`${id}:3`));
  expect(keysOf(watcher).filter((k) => k.startsWith(`${id}:`))).toEqual([`${id}:1`, `${id}:2`, `${id}:3`]);
  expect(feed().state.reads).toBeGreaterThan(reads);
  expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
});

it('loses nothing from a transaction that summarises itself statement by statement (SET CONSTRAINTS ALL IMMEDIATE)', async () => {
  const watcher = await client('watcher');
  await quiet();
  const before = feed().state.head;
  const c = await connection();
  await c.query('BEGIN');
  await c.query('SET CONSTRAINTS ALL IMMEDIATE');
  const a = (await insert(c, 'Immediate A')).rows[0]?.id as number;
  const b = (await insert(c, 'Immediate B')).rows[0]?.id as number;
  await c.query("UPDATE orders SET notes = 'after two summaries' WHERE id = $1", [a]);
  await c.query('COMMIT');
  await waitFor(() => keysOf(watcher).includes(`${a}:2`));
  expect(keysOf(watcher)).toEqual([`${a}:1`, `${b}:1`, `${a}:2`]);
  expect(await settle(db.sql, [watcher])).toEqual(cleanReports([watcher]));
  // A client resuming from before it gets it once, whole, whichever way the instance now has it.
  expect(await resume(before)).toEqual([`${a}:1`, `${b}:1`, `${a}:2`]);
});

it('refuses a forged summary: nothing reaches clients, the feed does not move, real changes still arrive', async () => {
  const watcher = await client('watcher');
  await quiet();
  const head = feed().state.head;
  const { refused } = { refused: feed().state.summariesRefused };
  const { rows } = await db.sql.query<{ x: string; s: string }>('SELECT txid_current() AS x, txid_current_snapshot()::text AS s');
  const xid = Number(rows[0]?.x) + 5;
  const change = JSON.stringify({
    op: 'insert',
    order: { id: 999_999, customer_name: 'Forged', product_name: 'Nothing', quantity: 1, status: 'pending', version: 1 },
    old: null,
    at: new Date().toISOString(),
  });
  const forged = `1 ${'ab'.repeat(32)} ${xid} ${xid}:${xid + 1}:\n1 ${Date.now()} ${change}`;
  // On the public channel it is only a doorbell; on the summaries' own (as if its name had leaked), it
  // fails its signature.
  const channel = (await db.sql.query<{ c: string }>('SELECT summary_channel AS c FROM feed_generation')).rows[0]?.c as string;
  for (const on of [channel, 'order_changes']) await db.sql.query('SELECT pg_notify($1, $2)', [on, forged]);
  await sleep(300);
  expect(feed().state.summariesRefused).toBe(refused + 1);
  expect(keysOf(watcher)).toEqual([]);
  // Had it been taken, the transaction it names would count as handed out: real ones up to it still arrive.
  const ids: number[] = [];
  for (let i = 0; i < 8; i++) ids.push((await insert(db.sql, `Real ${i}`)).rows[0]?.id as number);
  await waitFor(() => keysOf(watcher).length >= ids.length);
  expect(keysOf(watcher)).toEqual(ids.map((i) => `${i}:1`));
  expect(await resume(head)).toEqual(ids.map((i) => `${i}:1`));
});
