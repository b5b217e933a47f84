import pg from 'pg';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { migrate } from '../../src/db/migrate.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { usePrivateCluster } from '../helpers/fixtures.js';
import { http, startService } from '../helpers/service.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * Summaries (migrations/0014, feed/summary.ts) attacked as a hostile or unlucky user would: notifications
 * from a role with no privileges, replays, and writers that summarise in odd ways. A PostgreSQL of its own,
 * as in summaries.test.ts, and the safety-net poll slowed to a minute: a change a summary made the feed
 * skip would not come back within the test by a poll.
 */
const { db, svc } = usePrivateCluster({ FEED_POLL_MS: '60000', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' });
const clients: TestFeedClient[] = [];
const connections: pg.Client[] = [];

const feed = () => svc.service.feed;
const client = async (name: string) => {
  const c = await openClient({ http: svc.url, ws: svc.wsUrl, name });
  clients.push(c);
  return c;
};
/** The service's own write: it reads the log right after (feed.wroteLocally), closing what is open. */
const readNow = () => http(svc.url, 'POST', '/orders', { customer_name: 'Read', product_name: 'Now' });
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

/** What a client resuming from `after` on `wsUrl` receives in half a second (a reset rejects). */
function resume(wsUrl: string, after: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}?after=${encodeURIComponent(after)}`, { perMessageDeflate: false });
    const got: string[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'changes') for (const ch of m.changes) got.push(`${ch.order.id}:${ch.order.version}`);
      if (m.type === 'reset') reject(new Error(`reset: ${d.toString()}`));
    });
    setTimeout(() => {
      ws.terminate();
      resolve(got);
    }, 500);
  });
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(connections.splice(0).map((c) => c.end().catch(() => undefined)));
});

/**
 * After a transaction summarised its change `a` and hid its later change `b`: a later transaction's
 * summary says the first one has committed; only a read may close it, and the service's own write makes
 * one. Nothing is lost or repeated; the hidden change comes with the read, after the later transaction
 * (its statements were already coming one message each: docs/protocol.md).
 */
async function expectHiddenChangeDelivered(watcher: TestFeedClient, a: number, b: number): Promise<void> {
  const later = (await insert(db.sql, 'Later')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${later}:1`));
  await readNow();
  const [report] = await settle(db.sql, [watcher], 3000);
  expect({ ...report, outOfOrder: [] }).toEqual(cleanReports([watcher])[0]);
  expect(
    keysOf(watcher)
      .filter((k) => [a, b, later].some((id) => k === `${id}:1`))
      .sort(),
  ).toEqual([`${a}:1`, `${b}:1`, `${later}:1`].sort());
}

it('delivers the changes a transaction makes silently after it has summarised itself (SET CONSTRAINTS ALL IMMEDIATE, then orders.skip_notify)', async () => {
  const watcher = await client('watcher');
  const c = await connection();
  await c.query('BEGIN');
  await c.query('SET CONSTRAINTS ALL IMMEDIATE');
  const a = (await insert(c, 'Summarised')).rows[0]?.id as number;
  await c.query("SELECT set_config('orders.skip_notify', 'on', true)");
  const b = (await insert(c, 'Silent, after the summary')).rows[0]?.id as number;
  await c.query('COMMIT');
  await expectHiddenChangeDelivered(watcher, a, b);
  // Summaries are still on for this database (the key names it: migrations/0015).
  expect(feed().state.summaries).toBeGreaterThan(0);
});

it('takes nothing from a role without privileges: garbage, forged, tampered, oversized and replayed notifications', async () => {
  await db.sql.query("DROP ROLE IF EXISTS intruder; CREATE ROLE intruder LOGIN PASSWORD 'intruder'");
  const url = new URL(db.url);
  url.username = 'intruder';
  url.password = 'intruder';
  const intruder = await connection(url.toString());
  await expect(intruder.query('SELECT summary_key FROM feed_generation')).rejects.toThrow(/permission denied/);
  await expect(intruder.query('SELECT * FROM order_changes')).rejects.toThrow(/permission denied/);

  const watcher = await client('watcher');
  // LISTEN needs no privilege: on the public channel the intruder hears doorbells, never an order.
  const heard: string[] = [];
  intruder.on('notification', (m) => heard.push(`${m.channel} ${m.payload ?? ''}`));
  await intruder.query('LISTEN order_changes');
  // A real summary, recorded by the owner, who may read the summaries' channel (migrations/0015).
  const channel = (await db.sql.query<{ c: string }>('SELECT summary_channel AS c FROM feed_generation')).rows[0]?.c as string;
  expect(channel).toMatch(/^order_summaries_[0-9a-f]{32}$/);
  const owner = await connection(db.url);
  const recorded: string[] = [];
  owner.on('notification', (m) => recorded.push(m.payload ?? ''));
  await owner.query(`LISTEN ${channel}`);
  const first = (await insert(db.sql, 'Recorded')).rows[0]?.id as number;
  await waitFor(() => recorded.length === 1 && keysOf(watcher).includes(`${first}:1`));
  const real = recorded[0] as string;
  expect(real.startsWith('1 ')).toBe(true);
  expect(real).toContain('Recorded');
  expect(heard.filter((h) => h.includes('Recorded'))).toEqual([]);

  const { rows } = await db.sql.query<{ x: string }>('SELECT txid_current() AS x');
  const next = Number(rows[0]?.x) + 3;
  const [header, ...lines] = real.split('\n');
  const tampered = [header, ...lines.map((l) => l.replace('Recorded', 'Tampered'))].join('\n');
  const renamed = [header?.replace(/ \d+ /, ` ${next} `), ...lines].join('\n');
  const payloads = [
    'x',
    '1 ',
    '1',
    `1 ${'zz'.repeat(32)} `,
    `1 ${'00'.repeat(32)} ${next} ${next}:${next + 1}:\n1 1 {}`,
    real.slice(0, real.length - 5),
    real.slice(0, 70),
    tampered,
    renamed,
    `1 ${real.slice(2, 66)}  \n\n\n`,
    `1 ${'ab'.repeat(32)} ${'9'.repeat(7900)}`,
    'é'.repeat(3999),
    real,
    real,
  ];
  // On the public channel, and on the summaries' one as if its name had leaked (the signature still holds).
  for (const p of payloads) for (const on of ['order_changes', channel]) await intruder.query('SELECT pg_notify($1, $2)', [on, p]);
  // Each is a doorbell at most (reads fold): still one change, nothing invented, nothing twice.
  await sleep(300);
  expect(keysOf(watcher)).toEqual([`${first}:1`]);

  // Flooded while real writes go on: every real change still arrives, exactly once, in order.
  const ids: number[] = [];
  const flood = (async () => {
    for (let i = 0; i < 200; i++)
      await intruder.query('SELECT pg_notify($1, $2)', [i % 2 ? channel : 'order_changes', payloads[i % payloads.length] as string]);
  })();
  for (let i = 0; i < 10; i++) ids.push((await insert(db.sql, `Real ${i}`)).rows[0]?.id as number);
  await flood;
  await waitFor(() => keysOf(watcher).length >= ids.length + 1);
  expect(keysOf(watcher)).toEqual([`${first}:1`, ...ids.map((i) => `${i}:1`)]);
  expect(await settle(db.sql, [watcher], 3000)).toEqual(cleanReports([watcher]));
  expect(svc.service.feed.state.head).toBeTruthy();
});

it('delivers exactly what committed from savepoints, rollbacks, isolation levels, replica sessions, odd commit orders and near-limit summaries', async () => {
  const watcher = await client('watcher');
  const conns = await Promise.all([1, 2, 3, 4, 5, 6].map(() => connection()));
  const [a, b, c, d, e, f] = conns as [pg.Client, pg.Client, pg.Client, pg.Client, pg.Client, pg.Client];
  // Savepoints: what a rolled-back subtransaction changed never reaches anyone; what was kept does.
  await a.query('BEGIN');
  await insert(a, 'Kept before savepoint');
  await a.query('SAVEPOINT s1');
  await insert(a, 'Rolled back in s1');
  const kept = (await insert(a, 'Rolled back too')).rows[0]?.id as number;
  await a.query('ROLLBACK TO SAVEPOINT s1');
  await a.query('SAVEPOINT s2');
  await a.query("UPDATE orders SET notes = 'in s2, released' WHERE customer_name = 'Kept before savepoint'");
  await a.query('RELEASE SAVEPOINT s2');
  await a.query('SAVEPOINT s3');
  await a.query('SET CONSTRAINTS ALL IMMEDIATE');
  await insert(a, 'Summarised in s3, rolled back');
  await a.query('ROLLBACK TO SAVEPOINT s3');
  // A rolled-back transaction.
  await b.query('BEGIN');
  await insert(b, 'Never committed');
  // Isolation levels and a replica session, all open at once with the others (more than 4).
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await insert(c, 'Repeatable read');
  await d.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
  await insert(d, 'Serializable');
  await e.query("BEGIN; SET LOCAL session_replication_role = 'replica'");
  await insert(e, 'Replica');
  // Long multi-byte notes, just under and just over what a summary carries.
  await f.query('BEGIN');
  await insert(f, 'Near the limit', 'é€𝄞'.repeat(700));
  const bulk: number[] = [];
  for (let i = 0; i < 5; i++) bulk.push((await insert(db.sql, `Between ${i}`, '€'.repeat(2400 + i * 60))).rows[0]?.id as number);
  await db.sql.query(
    "INSERT INTO orders (customer_name, product_name, quantity, notes) SELECT 'Thirty-three ' || g, 'Attack', 1, '' FROM generate_series(1, 33) g",
  );
  // Commit in an order unlike the one they began in; b rolls back.
  await e.query('COMMIT');
  await c.query('COMMIT');
  await b.query('ROLLBACK');
  await a.query('COMMIT');
  await f.query('COMMIT');
  await d.query('COMMIT');
  const later = (await insert(db.sql, 'Last')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${later}:1`));
  expect(await settle(db.sql, [watcher], 3000)).toEqual(cleanReports([watcher]));
  expect(keysOf(watcher)).not.toContain(`${kept}:1`);
  expect(watcher.received.some((r) => r.key.startsWith(`${kept}:`))).toBe(false);
});

it('resumes across two instances from cursors that carry summarised transactions as partials, and survives the listener being killed mid-burst', async () => {
  const other = await startService(db.url, { FEED_POLL_MS: '60000', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' });
  try {
    const here = await client('here');
    const there = await openClient({ http: other.url, ws: other.wsUrl, name: 'there' });
    clients.push(there);
    const start = here.cursor as string;
    // Two transactions open at once, each summarised statement by statement: both stay partials.
    const [x, y] = [await connection(), await connection()];
    for (const t of [x, y]) await t.query('BEGIN; SET CONSTRAINTS ALL IMMEDIATE');
    const xa = (await insert(x, 'X a')).rows[0]?.id as number;
    const ya = (await insert(y, 'Y a')).rows[0]?.id as number;
    await x.query("UPDATE orders SET notes = 'X again' WHERE id = $1", [xa]);
    await y.query('COMMIT');
    await x.query('COMMIT');
    await waitFor(() => keysOf(here).includes(`${xa}:2`) && keysOf(there).includes(`${xa}:2`));
    const withPartials = [here.cursor as string, there.cursor as string];
    expect(withPartials.some((c) => /:\d+-\d+/.test(c))).toBe(true);
    const z = (await insert(db.sql, 'Z')).rows[0]?.id as number;
    await waitFor(() => keysOf(here).includes(`${z}:1`) && keysOf(there).includes(`${z}:1`));
    for (const wsUrl of [svc.wsUrl, other.wsUrl]) {
      for (const c of withPartials) expect(await resume(wsUrl, c)).toEqual([`${z}:1`]);
      expect(await resume(wsUrl, start)).toEqual([`${ya}:1`, `${xa}:1`, `${xa}:2`, `${z}:1`]);
    }

    // A burst from four writers; both instances' listeners are killed in the middle of it.
    const writers = await Promise.all([1, 2, 3, 4].map(() => connection()));
    const burst = writers.map(async (w, n) => {
      for (let i = 0; i < 25; i++) {
        await w.query('BEGIN');
        const id = (await insert(w, `Burst ${n}.${i}`)).rows[0]?.id as number;
        if (i % 3 === 0) await w.query("UPDATE orders SET notes = 'twice' WHERE id = $1", [id]);
        await w.query('COMMIT');
      }
    });
    await sleep(30);
    const killed = await db.sql.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orders-listener'");
    expect(killed.rowCount).toBe(2);
    await Promise.all(burst);
    await waitFor(() => svc.service.listener.state.status === 'connected' && other.service.listener.state.status === 'connected');
    const last = (await insert(db.sql, 'After the burst')).rows[0]?.id as number;
    await waitFor(() => keysOf(here).includes(`${last}:1`) && keysOf(there).includes(`${last}:1`));
    expect(await settle(db.sql, [here, there], 3000)).toEqual(cleanReports([here, there]));
    const whole = (k: TestFeedClient) => k.messages.filter((m) => m.keys.length > 0).every((m) => !m.more);
    expect(whole(here) && whole(there)).toBe(true);
  } finally {
    await other.close();
  }
});

it('takes no summary replayed from another database of the cluster, even one cloned from this one (same generation row)', async () => {
  const admin = new URL(db.url);
  admin.pathname = '/origin_db';
  await db.sql.query('CREATE DATABASE origin_db');
  const originPool = new pg.Pool({ connectionString: admin.toString(), max: 1 });
  originPool.on('error', () => undefined);
  await migrate(originPool, pino({ level: 'silent' }));
  await originPool.end();
  // A staging copy, say: CREATE DATABASE … TEMPLATE copies the unlogged generation row, key and all.
  await db.sql.query('CREATE DATABASE copy_db TEMPLATE origin_db');
  const copyUrl = new URL(db.url);
  copyUrl.pathname = '/copy_db';
  const copy = await startService(copyUrl.toString(), { FEED_POLL_MS: '60000', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' });
  try {
    const watcher = await openClient({ http: copy.url, ws: copy.wsUrl, name: 'copy' });
    clients.push(watcher);
    // The copy claimed a generation of its own when its service started: another key, channel and tag.
    const originDb = await connection(admin.toString());
    const channelOf = async (c: pg.Client) =>
      (await c.query<{ c: string }>('SELECT summary_channel AS c FROM feed_generation')).rows[0]?.c as string;
    const intoCopy = await connection(copyUrl.toString());
    const originChannel = await channelOf(originDb);
    const copyChannel = await channelOf(intoCopy);
    expect(copyChannel).not.toBe(originChannel);
    const recorded: string[] = [];
    originDb.on('notification', (m) => recorded.push(m.payload ?? ''));
    await originDb.query(`LISTEN ${originChannel}`);
    await insert(originDb, 'Only in the origin');
    await waitFor(() => recorded.length === 1);
    // Replayed into the copy, on every channel it might be heard on.
    for (const on of ['order_changes', originChannel, copyChannel])
      await intoCopy.query('SELECT pg_notify($1, $2)', [on, recorded[0] as string]);
    await sleep(500);
    expect(keysOf(watcher)).toEqual([]);
    // The copy's own writes still arrive.
    const own = (await insert(intoCopy, 'In the copy')).rows[0]?.id as number;
    await waitFor(() => keysOf(watcher).length > 0);
    expect(keysOf(watcher)).toEqual([`${own}:1`]);
    expect(copy.service.feed.state.summaries).toBeGreaterThan(0);
  } finally {
    await copy.close();
  }
});

it('delivers many-statement and many-at-once SET CONSTRAINTS ALL IMMEDIATE transactions, and a prepared transaction, exactly once', async () => {
  const watcher = await client('watcher');
  const start = watcher.cursor as string;
  // One transaction, forty statements: a summary each while they fit, then doorbells.
  const long = await connection();
  await long.query('BEGIN; SET CONSTRAINTS ALL IMMEDIATE');
  for (let i = 0; i < 40; i++) await insert(long, `Statement ${i}`, 'x'.repeat(i * 10));
  await long.query('COMMIT');
  // Six open at once (more than the head holds open between reads), committing in a shuffled order.
  const six = await Promise.all([1, 2, 3, 4, 5, 6].map(() => connection()));
  for (const t of six) await t.query('BEGIN; SET CONSTRAINTS ALL IMMEDIATE');
  for (let round = 0; round < 3; round++) for (const [n, t] of six.entries()) await insert(t, `Open ${n}.${round}`);
  for (const n of [3, 0, 5, 1, 4, 2]) await (six[n] as pg.Client).query('COMMIT');
  // A prepared transaction (it may not NOTIFY, so it sets orders.skip_notify); committed later, elsewhere.
  const { rows } = await db.sql.query<{ max_prepared_transactions: string }>('SHOW max_prepared_transactions');
  let prepared: number | undefined;
  if (Number(rows[0]?.max_prepared_transactions) > 0) {
    const p = await connection();
    await p.query("BEGIN; SET LOCAL orders.skip_notify = 'on'");
    prepared = (await insert(p, 'Prepared')).rows[0]?.id as number;
    await p.query("PREPARE TRANSACTION 'attack'");
    await insert(db.sql, 'While prepared');
    await db.sql.query("COMMIT PREPARED 'attack'");
  }
  const last = (await insert(db.sql, 'Last')).rows[0]?.id as number;
  await waitFor(() => keysOf(watcher).includes(`${last}:1`));
  if (prepared !== undefined) await waitFor(() => keysOf(watcher).includes(`${prepared}:1`));
  expect(await settle(db.sql, [watcher], 3000)).toEqual(cleanReports([watcher]));
  expect(watcher.messages.filter((m) => m.keys.length > 0).every((m) => !m.more)).toBe(true);
  // From before all of it, on a fresh connection: the same changes, once each.
  expect(await resume(svc.wsUrl, start)).toEqual(keysOf(watcher));
});

it('takes no summary of an ended generation: replayed after feed_generation was deleted and started again', async () => {
  const watcher = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'generation', autoResync: true });
  clients.push(watcher);
  const recorder = await connection();
  const recorded: string[] = [];
  recorder.on('notification', (m) => recorded.push(m.payload ?? ''));
  const oldChannel = (await db.sql.query<{ c: string }>('SELECT summary_channel AS c FROM feed_generation')).rows[0]?.c as string;
  await recorder.query(`LISTEN ${oldChannel}`);
  const before = Number((await insert(db.sql, 'Old generation')).rows[0]?.id);
  await waitFor(() => keysOf(watcher).includes(`${before}:1`));
  await db.sql.query('DELETE FROM feed_generation');
  await db.sql.query('SELECT feed_start_generation()');
  const after = Number((await insert(db.sql, 'New generation')).rows[0]?.id);
  // The feed notices the new generation at its first read (its clients reset and reload), then the replay.
  await waitFor(() => watcher.resets.length > 0 && watcher.view.has(after));
  const newChannel = (await db.sql.query<{ c: string }>('SELECT summary_channel AS c FROM feed_generation')).rows[0]?.c as string;
  expect(recorded.length).toBeGreaterThan(0);
  for (const p of recorded)
    for (const on of ['order_changes', oldChannel, newChannel]) await db.sql.query('SELECT pg_notify($1, $2)', [on, p]);
  const last = Number((await insert(db.sql, 'Last')).rows[0]?.id);
  await waitFor(() => watcher.view.has(last));
  expect(await settle(db.sql, [watcher], 3000)).toEqual(cleanReports([watcher]));
  expect(watcher.epochs.flatMap((e) => e.received).filter((r) => r.id === before)).toHaveLength(1);
});

// A writer that switches off its own later summary (the triggers' state is in settings any session may
// set): only a read closes a summarised transaction, so the change it hid arrives with that read.
it('delivers a change whose summary a hostile writer switched off after an earlier summary (orders.summary_due)', async () => {
  const watcher = await client('watcher');
  const c = await connection();
  await c.query('BEGIN');
  const a = Number((await insert(c, 'Summarised early')).rows[0]?.id);
  await c.query('SET CONSTRAINTS ALL IMMEDIATE');
  await c.query('SET CONSTRAINTS ALL DEFERRED');
  const b = Number((await insert(c, 'Its summary switched off')).rows[0]?.id);
  await c.query("SELECT set_config('orders.summary_due', 'off', true)");
  await c.query('COMMIT');
  await expectHiddenChangeDelivered(watcher, a, b);
});
