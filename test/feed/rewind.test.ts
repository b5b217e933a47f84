import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Database } from '../../src/db/database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { parseCursor } from '../../src/feed/cursor.js';
import { pruneChanges } from '../../src/feed/retention.js';
import { createTestDatabase, databaseUrl, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/**
 * Guarantee 8: the database going back in time. The service runs against cluster A (the suite's), whose
 * transaction-id counter has been driven well up; then A is "restored" into a fresh cluster B (a small
 * counter), as a data-only pg_restore --disable-triggers would do it, and the service's connections are
 * moved to B under it (a TCP proxy, retargeted, and every connection cut). The feed's head is then above
 * anything B has written, and the pruning mark copied from A is above every snapshot B takes. The feed
 * must notice, forget A's history, and reset its clients once; they reload from B and stream B's changes.
 */
const silent = pino({ level: 'silent' });
let a: TestDatabase;
let dir: string;
let clusterB: EmbeddedPostgres;
let proxy: TcpProxy;
let viaProxy: pg.Pool;
let sqlB: pg.Pool;
const services: RunningService[] = [];
const clients: TestFeedClient[] = [];
const pools: pg.Pool[] = [];
const proxies: TcpProxy[] = [];
const databases: TestDatabase[] = [];
const clusters: { cluster: EmbeddedPostgres; dir: string }[] = [];
/** From the first test: its service (now on B) and a cursor it handed out from A's history. */
let rewoundService: RunningService | undefined;
let preRestoreCursor: string | undefined;

/** A logger that keeps every line's `event`, so the test can see what the service said it did. */
function recordingLogger(): { log: Logger; events: { event: string; [k: string]: unknown }[] } {
  const events: { event: string; [k: string]: unknown }[] = [];
  const log = pino(
    { level: 'info' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { event?: string };
        if (entry.event) events.push(entry as { event: string });
      },
    },
  );
  return { log, events };
}

/** Moves the transaction-id counter of the cluster up by `n`, one committed transaction per xid. */
async function burnXids(sql: pg.Pool, n: number): Promise<void> {
  await sql.query(`DO $$ BEGIN FOR i IN 1..${n} LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$`);
}

async function nextXid(sql: pg.Pool): Promise<number> {
  const { rows } = await sql.query<{ x: string }>('SELECT txid_snapshot_xmax(txid_current_snapshot()) AS x');
  return Number(rows[0]?.x);
}

/**
 * A data-only restore of A's orders, change log and pruning mark into `target` (migrated, empty): what
 * pg_restore --data-only --disable-triggers does, in SQL (Debian's pg_dump cannot dump PostgreSQL 18).
 * Read from A in one REPEATABLE READ transaction: a consistent dump, however A is written meanwhile.
 */
async function restore(source: pg.Pool, target: pg.Pool): Promise<{ orders: number; changes: number; mark: string }> {
  const src = await source.connect();
  let dump: { orders: unknown[]; changes: unknown[]; pruned: unknown[] };
  try {
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const { rows } = await src.query<{ orders: unknown[]; changes: unknown[]; pruned: unknown[] }>(`
      SELECT (SELECT coalesce(json_agg(o), '[]') FROM orders o) AS orders,
             (SELECT coalesce(json_agg(c), '[]') FROM order_changes c) AS changes,
             (SELECT json_agg(p) FROM order_changes_pruned p) AS pruned`);
    await src.query('COMMIT');
    dump = rows[0] as typeof dump;
  } finally {
    src.release();
  }
  const dst = await target.connect();
  try {
    await dst.query('BEGIN');
    for (const table of ['orders', 'order_changes', 'order_changes_pruned']) {
      await dst.query(`ALTER TABLE ${table} DISABLE TRIGGER ALL`);
    }
    // The migrations' own row of the singleton table; the dump brings A's.
    await dst.query('DELETE FROM order_changes_pruned');
    await dst.query('INSERT INTO orders OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(null::orders, $1)', [
      JSON.stringify(dump.orders),
    ]);
    await dst.query('INSERT INTO order_changes OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(null::order_changes, $1)', [
      JSON.stringify(dump.changes),
    ]);
    await dst.query('INSERT INTO order_changes_pruned SELECT * FROM json_populate_recordset(null::order_changes_pruned, $1)', [
      JSON.stringify(dump.pruned),
    ]);
    for (const table of ['orders', 'order_changes', 'order_changes_pruned']) {
      await dst.query(`ALTER TABLE ${table} ENABLE TRIGGER ALL`);
    }
    // ENABLE TRIGGER ALL makes them ordinary triggers again; migration 0008 wants them ALWAYS.
    await dst.query('ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_normalize');
    await dst.query('ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_capture');
    await dst.query('ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_refuse_truncate');
    await dst.query(`SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM orders), false)`);
    await dst.query(
      `SELECT setval(pg_get_serial_sequence('order_changes', 'seq'), (SELECT coalesce(max(seq), 0) + 1 FROM order_changes), false)`,
    );
    await dst.query('COMMIT');
  } catch (err) {
    await dst.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    dst.release();
  }
  const { rows } = await target.query<{ mark: string }>('SELECT mark FROM order_changes_pruned');
  return { orders: dump.orders.length, changes: dump.changes.length, mark: rows[0]?.mark ?? '' };
}

/** The service's URL names A's credentials; another cluster must accept them (a restore brings its roles). */
async function acceptCredentialsOfA(cluster: EmbeddedPostgres): Promise<void> {
  const aUrl = new URL(a.url);
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    const user = decodeURIComponent(aUrl.username);
    const password = decodeURIComponent(aUrl.password);
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
    const role = `"${user.replaceAll('"', '""')}"`;
    const literal = `'${password.replaceAll("'", "''")}'`;
    if (exists.rowCount === 0) await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD ${literal}`);
    else await admin.query(`ALTER ROLE ${role} PASSWORD ${literal}`);
  } finally {
    await admin.end();
  }
}

/** A database named `name` on cluster B (or another), migrated, reachable with A's credentials. */
async function databaseOnB(name: string, cluster = clusterB): Promise<{ url: string; sql: pg.Pool }> {
  const admin = new pg.Client({ connectionString: onB('postgres', cluster) });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = onB(name, cluster);
  const sql = new pg.Pool({ connectionString: url, max: 4 });
  sql.on('error', () => undefined);
  pools.push(sql);
  await migrate(sql, silent);
  return { url, sql };
}

/** Database `name` on cluster B, with A's credentials (B's superuser was given A's password). */
function onB(name: string, cluster = clusterB): string {
  const url = new URL(databaseUrl(a.url, name));
  url.port = String(cluster.port);
  return url.toString();
}

function cursorXmax(text: string): number {
  const c = parseCursor(text);
  if (!c) throw new Error(`not a cursor: ${text}`);
  return c.snapshot.xmax;
}

beforeAll(async () => {
  a = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'orders-feed-rewind-'));
  clusterB = await startEmbeddedPostgres({ dataDir: dir, port: 0, log: silent });
  await acceptCredentialsOfA(clusterB);
  // A has lived long: its counter is thousands of transactions above a fresh cluster's.
  await burnXids(a.sql, 5000);
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of services.splice(0)) await s.close();
  await viaProxy?.end();
  await Promise.all(pools.splice(0).map((p) => p.end()));
  await proxy?.close();
  for (const p of proxies.splice(0)) await p.close();
  await clusterB?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const { cluster, dir: d } of clusters.splice(0)) {
    await cluster.stop();
    await rm(d, { recursive: true, force: true });
  }
  for (const d of databases.splice(0)) await d.drop();
  await a?.drop();
});

it('a restore into a fresh cluster under a running service: clients reset once, reload from the restore, and stream its changes', async () => {
  await insertOrders(a.sql, 40);
  await a.sql.query("UPDATE orders SET notes = 'before pruning' WHERE id <= 20");
  // Retention has run on A: its mark is a snapshot of A's, above everything B will have written.
  expect(await pruneChanges(new Database(a.sql), { maxAgeHours: 0, maxRows: 30 })).toBeGreaterThan(0);

  proxy = await TcpProxy.start(Number(new URL(a.url).port));
  const serviceUrl = proxy.urlFor(a.url);
  const { log, events } = recordingLogger();
  const svc = await startService(
    serviceUrl,
    {
      LISTENER_BACKOFF_MIN_MS: '50',
      LISTENER_BACKOFF_MAX_MS: '300',
      DB_CONNECT_TIMEOUT_MS: '1000',
      FEED_POLL_MS: '300',
      FEED_RETENTION_HOURS: '0',
      FEED_RETENTION_MAX_ROWS: '0',
    },
    log,
  );
  services.push(svc);
  for (let i = 0; i < 3; i++) clients.push(await openClient({ http: svc.url, ws: svc.wsUrl, name: `client-${i}`, autoResync: true }));
  // A dashboard that goes away before the restore and comes back after it, with A's cursor.
  const sleeper = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'sleeper', autoResync: true });

  // "Other programs" write through the same proxy: after the switch they write to B.
  viaProxy = new pg.Pool({ connectionString: serviceUrl, max: 4, connectionTimeoutMillis: 2000 });
  viaProxy.on('error', () => undefined);
  const writer = steadyWriter(viaProxy, { perSecond: 60, durationMs: 60_000, workers: 2 });
  await waitFor(() => writer.writes > 60, { message: 'writes on A' });
  await waitFor(() => clients.every((c) => c.received.length > 20), { message: 'clients streaming from A' });
  await sleeper.disconnect();
  preRestoreCursor = sleeper.cursor as string;
  rewoundService = svc;
  const aNext = await nextXid(a.sql);

  // The restore: B is migrated, A's data copied in; writes to A after the dump are lost, as in a
  // point-in-time restore or an asynchronous failover.
  const b = await databaseOnB(a.name);
  sqlB = b.sql;
  const restored = await restore(a.sql, sqlB);
  expect(restored.orders).toBeGreaterThan(40);
  const bNext = await nextXid(sqlB);
  // The situation under test: B's counter is below what the feed has handed out, and below A's mark.
  expect(bNext).toBeLessThan(cursorXmax(svc.service.feed.state.head) - 1000);
  expect(cursorXmax(restored.mark)).toBeGreaterThan(bNext + 1000);
  expect(aNext).toBeGreaterThan(bNext + 1000);

  proxy.retarget(clusterB.port);
  proxy.cut();
  const writesAtSwitch = writer.writes;

  await waitFor(() => events.some((e) => e.event === 'feed.rewound'), { timeout: 15_000, message: 'the feed noticed the rewind' });
  await waitFor(() => writer.writes > writesAtSwitch + 100, { timeout: 20_000, message: 'writes on B after the switch' });
  // The feed's head is B's now, not A's.
  expect(cursorXmax(svc.service.feed.state.head)).toBeLessThan(bNext + 5000);

  // Every client was reset (once: the rewind), reloaded from B, and streams B's writes.
  await waitFor(() => clients.every((c) => c.resets.length >= 1 && c.connected), { timeout: 15_000, message: 'clients reset and back' });
  for (const c of clients) await c.settledResync();

  // The sleeper comes back with A's cursor: reset (not trusted, not looped), then it streams normally.
  await sleeper.connect();
  await waitFor(() => sleeper.resets.length >= 1, { message: 'the pre-restore cursor was reset' });
  expect(['cursor-unknown', 'cursor-expired']).toContain(sleeper.resets[0]?.reason);
  await waitFor(() => sleeper.connected && sleeper.epochs.length >= 2, { message: 'the sleeper reloaded from B' });
  await sleeper.settledResync();
  clients.push(sleeper);

  await writer.stop();
  // A write on B after everything: nothing is silently skipped.
  const [marker] = await insertOrders(sqlB, 1, 'written on B after the restore');
  // Judged against B's history only: the epochs before the reset were A's, and A's lost commits share
  // names (order id:version) with B's new changes, so the checker would take them for B's.
  for (const c of clients) c.epochs.splice(0, c.epochs.length - 1);
  const reports = await settle(sqlB, clients, 20_000);
  expect(reports).toEqual(cleanReports(clients));
  for (const c of clients) expect(cursorXmax(c.epochs.at(-1)?.base ?? '')).toBeLessThan(bNext + 5000);
  for (const c of clients) expect(c.view.get(marker as number)?.order.notes).toBe('written on B after the restore');

  // No reset loop: a rewind costs each client at most two resets, and they stay connected.
  await sleep(1000);
  for (const c of clients) {
    expect(c.resets.length, `${c.name} resets`).toBeLessThanOrEqual(2);
    expect(c.connected, `${c.name} connected`).toBe(true);
  }
  expect(events.filter((e) => e.event === 'feed.rewound').length).toBe(1);
});

it('a service started on a restored database whose pruning mark is from the future does not reset its clients in a loop', async () => {
  // The same dump (A, with its mark) restored into another database of B, and a fresh service on it.
  const name = `${a.name}_fresh`;
  const b = await databaseOnB(name);
  const restored = await restore(a.sql, b.sql);
  expect(cursorXmax(restored.mark)).toBeGreaterThan((await nextXid(b.sql)) + 1000);
  const { log, events } = recordingLogger();
  const svc = await startService(b.url, { FEED_POLL_MS: '300', FEED_RETENTION_HOURS: '0', FEED_RETENTION_MAX_ROWS: '0' }, log);
  services.push(svc);
  const fresh = await Promise.all([0, 1, 2].map((i) => openClient({ http: svc.url, ws: svc.wsUrl, name: `fresh-${i}`, autoResync: true })));
  clients.push(...fresh);
  await waitFor(() => events.some((e) => e.event === 'feed.rewound'), { message: 'the mark from the future was noticed' });
  const writer = steadyWriter(b.sql, { perSecond: 50, durationMs: 2000, workers: 2 });
  await writer.done;
  await Promise.all(fresh.map((c) => c.settledResync()));
  expect(await settle(b.sql, fresh, 15_000)).toEqual(cleanReports(fresh));
  await sleep(1000);
  for (const c of fresh) {
    expect(c.resets.length, `${c.name} resets`).toBeLessThanOrEqual(2);
    expect(c.connected, `${c.name} connected`).toBe(true);
  }
});

// After a rewind the mark is B's snapshot at that moment, which a cursor from A's history (xmax above it)
// contains: once B's counter passed it, it once resumed with a silent gap. Cursors carry their history's
// tag (system identifier and timeline, migrations/0010), and one from another history is reset.
it('a pre-restore cursor is still reset once the restored cluster has written past it', async () => {
  const svc = rewoundService;
  const old = preRestoreCursor;
  if (!svc || !old) throw new Error('needs the first test');
  // B keeps writing until its counter is past everything A's history handed out.
  await burnXids(sqlB, cursorXmax(old) - (await nextXid(sqlB)) + 100);
  await insertOrders(sqlB, 1, 'written on B above the old head');
  await waitFor(() => cursorXmax(svc.service.feed.state.head) > cursorXmax(old), { message: 'the feed passed the old head' });
  // The cursor says it has everything below A's head; B's changes from the rewind up to there it never
  // saw (it had A's lost commits instead). Resuming it would be a silent gap: it must be reset.
  const c = new TestFeedClient({ http: svc.url, ws: svc.wsUrl, name: 'late-sleeper' });
  c.cursor = old;
  c.epochs.push({ base: old, received: [] });
  clients.push(c);
  await c.connect();
  await sleep(500);
  expect(c.resets.map((r) => r.reason)).toEqual([expect.stringMatching(/^cursor-(unknown|expired)$/)]);
});

// An asynchronous failover loses a few transactions; the new primary's counter restarts just below the
// head, and a handful of writes take it past the head before this service reconnects: xmax never goes
// back. The history tag (here a new system identifier; a failover's new timeline likewise) gives it away.
it('an asynchronous failover whose new primary passed the head before the feed read it is still detected', async () => {
  const a2 = await createTestDatabase();
  databases.push(a2);
  await insertOrders(a2.sql, 20);
  const dirC = await mkdtemp(path.join(tmpdir(), 'orders-feed-rewind-c-'));
  const clusterC = await startEmbeddedPostgres({ dataDir: dirC, port: 0, log: silent });
  clusters.push({ cluster: clusterC, dir: dirC });
  await acceptCredentialsOfA(clusterC);
  const c = await databaseOnB(a2.name, clusterC);
  const p = await TcpProxy.start(Number(new URL(a2.url).port));
  proxies.push(p);
  const svc = await startService(p.urlFor(a2.url), {
    LISTENER_BACKOFF_MIN_MS: '50',
    LISTENER_BACKOFF_MAX_MS: '300',
    DB_CONNECT_TIMEOUT_MS: '1000',
    FEED_POLL_MS: '300',
    FEED_RETENTION_HOURS: '0',
    FEED_RETENTION_MAX_ROWS: '0',
  });
  services.push(svc);
  const watchers = await Promise.all(
    [0, 1].map((i) => openClient({ http: svc.url, ws: svc.wsUrl, name: `failover-${i}`, autoResync: true })),
  );
  clients.push(...watchers);
  await a2.sql.query("UPDATE orders SET notes = 'on A' WHERE id <= 10");
  await waitFor(() => watchers.every((w) => w.view.get(10)?.order.notes === 'on A'), { message: 'streaming from A' });
  // The standby had everything (a consistent copy); its counter is a little below the feed's head. (Taken
  // once a read has closed the summarised update, after which the head no longer moves: feed/summary.ts.)
  await waitFor(() => svc.service.feed.head.partials.length === 0, { message: 'a read after the summary' });
  await sleep(400);
  const head = cursorXmax(svc.service.feed.state.head);
  await restore(a2.sql, c.sql);
  const cNext = await nextXid(c.sql);
  expect(cNext).toBeLessThan(head - 100);
  await burnXids(c.sql, head - 50 - cNext);
  // Promoted, it takes writes from others before this service reconnects: xids below the old head...
  await c.sql.query("UPDATE orders SET notes = 'on the new primary, below the old head' WHERE id <= 5");
  // ...and soon above it.
  await burnXids(c.sql, 100);
  expect(await nextXid(c.sql)).toBeGreaterThan(head);
  expect(cursorXmax(svc.service.feed.state.head)).toBe(head);
  p.retarget(clusterC.port);
  p.cut();
  await c.sql.query("UPDATE orders SET notes = 'on the new primary, above the old head' WHERE id > 15");
  // Either delivered or reset and reloaded: the clients must end showing the new primary's table.
  expect(await settle(c.sql, watchers, 8000)).toEqual(cleanReports(watchers));
});
