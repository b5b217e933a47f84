import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';
import { sleep, waitFor } from './helpers/wait.js';

/**
 * Issue 11, guarantee 7: no writer slips past the capture. Writers that turn ordinary triggers off
 * (session_replication_role = replica), TRUNCATE, and two-phase commit writers, each against a real
 * PostgreSQL and a running service, watched by a plain WebSocket client.
 *
 * The client relies only on `type === 'changes'` and each change's `op` and `order` (the cursor's shape
 * and place in the message are being changed elsewhere).
 */
let db: TestDatabase;
let svc: RunningService;
const watchers: Watcher[] = [];
const open: pg.Client[] = [];
/** Prefix of every prepared transaction this file creates, so afterAll can resolve leftovers. */
const GID = `capture_integrity_${randomBytes(4).toString('hex')}`;

interface Received {
  op: string;
  order: { id: number; version: number } & Record<string, unknown>;
}

class Watcher {
  readonly received: Received[] = [];
  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; changes?: Received[] };
      if (message.type === 'changes') for (const c of message.changes ?? []) this.received.push({ op: c.op, order: c.order });
    });
    socket.on('error', () => undefined);
  }

  /**
   * Streams from the cursor of a snapshot (as a dashboard does), so every change committed after that
   * snapshot is delivered, however soon after the socket opens it is written.
   */
  static async open(): Promise<Watcher> {
    const list = await http(svc.url, 'GET', '/orders?limit=1');
    const cursor = list.headers.get('x-change-cursor');
    if (!cursor) throw new Error('GET /orders without X-Change-Cursor');
    const socket = new WebSocket(`${svc.wsUrl}?after=${encodeURIComponent(cursor)}`, { perMessageDeflate: false });
    const w = new Watcher(socket);
    watchers.push(w);
    await waitFor(() => socket.readyState === WebSocket.OPEN, { message: 'the feed socket open' });
    return w;
  }

  of(id: number): Received[] {
    return this.received.filter((r) => Number(r.order.id) === id);
  }

  async waitFor(id: number, version: number): Promise<Received> {
    return waitFor(() => this.of(id).find((r) => r.order.version === version), {
      message: `order ${id} version ${version} delivered`,
    });
  }

  close(): void {
    this.socket.terminate();
  }
}

/** A connection of its own: a session with its own settings, or a transaction held open. */
const connection = async () => {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
};

const insertOrder = async (notes = '') =>
  Number(
    (
      await db.sql.query<{ id: string }>(
        "INSERT INTO orders (customer_name, product_name, notes) VALUES ('Ada', 'Engine', $1) RETURNING id",
        [notes],
      )
    ).rows[0]?.id,
  );

/** A marker written by an ordinary writer: once it is delivered, everything before it in the feed was too. */
const marker = async (w: Watcher) => {
  const id = await insertOrder('marker');
  await w.waitFor(id, 1);
};

const changeRows = async (id: number) =>
  (await db.sql.query<{ op: string; version: number }>('SELECT op, version FROM order_changes WHERE order_id = $1 ORDER BY xid, seq', [id]))
    .rows;

/** Rolls back every prepared transaction this file left behind: one would hold locks and the cluster's xmin (the feed's horizon). */
const resolvePrepared = async () => {
  if (!db) return;
  const { rows } = await db.sql.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1', [`${GID}%`]);
  for (const { gid } of rows) await db.sql.query(`ROLLBACK PREPARED '${gid}'`).catch(() => undefined);
};

beforeAll(async () => {
  db = await createTestDatabase();
  // The feed's safety-net read finds changes whose writer rang no doorbell (two-phase writers).
  svc = await startService(db.url, { FEED_POLL_MS: '100' });
});

afterEach(async () => {
  // A test that failed while a transaction was prepared must not stall the feed for the next ones.
  await resolvePrepared();
  for (const w of watchers.splice(0)) w.close();
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
});

afterAll(async () => {
  try {
    await resolvePrepared();
  } finally {
    await svc?.close();
    await db?.drop();
  }
});

describe('writers with session_replication_role = replica (logical replication apply, ETL tools)', () => {
  it('every trigger on orders fires always, whatever the session replication role', async () => {
    const { rows } = await db.sql.query<{ tgname: string; tgenabled: string }>(
      "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal ORDER BY tgname",
    );
    expect(rows.map((r) => r.tgname)).toEqual(expect.arrayContaining(['orders_capture', 'orders_normalize']));
    for (const r of rows) expect({ trigger: r.tgname, enabled: r.tgenabled }).toEqual({ trigger: r.tgname, enabled: 'A' });
  });

  it('an update, insert and delete in a replica-role session bump versions, are logged and reach a connected client', async () => {
    const id = await insertOrder('before');
    const watcher = await Watcher.open();
    const replica = await connection();
    await replica.query('SET session_replication_role = replica');

    await replica.query("UPDATE orders SET notes = 'written as a replica' WHERE id = $1", [id]);
    const row = (await db.sql.query('SELECT version, notes FROM orders WHERE id = $1', [id])).rows[0];
    expect(row).toEqual({ version: 2, notes: 'written as a replica' });
    const update = await watcher.waitFor(id, 2);
    expect(update).toMatchObject({ op: 'update', order: { id, version: 2, notes: 'written as a replica' } });

    const inserted = Number(
      (
        await replica.query<{ id: string }>(
          "INSERT INTO orders (customer_name, product_name, version) VALUES ('  Grace ', 'Lathe', 7) RETURNING id",
        )
      ).rows[0]?.id,
    );
    await replica.query('DELETE FROM orders WHERE id = $1', [inserted]);
    // The normalising trigger still trims and versions; the capture trigger logs both changes.
    expect(await watcher.waitFor(inserted, 1)).toMatchObject({ op: 'insert', order: { customer_name: 'Grace', version: 1 } });
    expect(await watcher.waitFor(inserted, 2)).toMatchObject({ op: 'delete' });

    expect(await changeRows(id)).toEqual([
      { op: 'insert', version: 1 },
      { op: 'update', version: 2 },
    ]);
    expect(await changeRows(inserted)).toEqual([
      { op: 'insert', version: 1 },
      { op: 'delete', version: 2 },
    ]);
    await marker(watcher);
    expect(watcher.of(id)).toHaveLength(1);
  });
});

describe('TRUNCATE orders', () => {
  const variants: [string, string[]][] = [
    ['TRUNCATE orders', []],
    ['TRUNCATE orders CASCADE', []],
    ['TRUNCATE ONLY orders RESTART IDENTITY', []],
    ['TRUNCATE orders, order_changes', []],
    ['TRUNCATE orders (as a replica-role session)', ['SET session_replication_role = replica']],
  ];

  it.each(variants)('%s is refused, saying why and what to do instead; every order is still there', async (label, setup) => {
    await insertOrder('must survive');
    const before = (await db.sql.query('SELECT id, version FROM orders ORDER BY id')).rows;
    const changesBefore = (await db.sql.query('SELECT count(*)::int AS n FROM order_changes')).rows[0];
    const c = await connection();
    for (const s of setup) await c.query(s);
    const statement = label.replace(/ \(.*\)$/, '');
    const err = await c.query(statement).then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    );
    expect(err, `${statement} should be refused`).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/TRUNCATE .*orders.* refused/);
    expect(err?.message).toContain('DELETE FROM orders');
    expect(err?.code).toBe('0A000');
    expect((await db.sql.query('SELECT id, version FROM orders ORDER BY id')).rows).toEqual(before);
    expect((await db.sql.query('SELECT count(*)::int AS n FROM order_changes')).rows[0]).toEqual(changesBefore);
  });

  it('is allowed only when the transaction opts in with orders.allow_truncate (a deliberate reset no client watches)', async () => {
    await insertOrder('reset');
    const c = await connection();
    await c.query('BEGIN');
    await c.query("SET LOCAL orders.allow_truncate = 'on'");
    await c.query('TRUNCATE orders, order_changes');
    await c.query('ROLLBACK');
    // The opt-in is per transaction: the same session is refused again afterwards.
    await expect(c.query('TRUNCATE orders')).rejects.toThrow(/DELETE FROM orders/);
    expect(Number((await db.sql.query('SELECT count(*) AS n FROM orders')).rows[0]?.n)).toBeGreaterThan(0);
  });
});

describe('two-phase commit writers (PREPARE TRANSACTION)', () => {
  /**
   * The embedded PostgreSQL (src/db/embedded.ts) allows prepared transactions. A DATABASE_URL server may
   * not (max_prepared_transactions defaults to 0): then these tests are skipped, saying so.
   */
  const requireTwoPhase = async (ctx: { skip: (note?: string) => never }) => {
    const { rows } = await db.sql.query<{ max_prepared_transactions: string }>('SHOW max_prepared_transactions');
    const max = Number(rows[0]?.max_prepared_transactions);
    if (max > 0) return;
    if (process.env.DATABASE_URL) ctx.skip('max_prepared_transactions is 0 on the DATABASE_URL server: two-phase commit cannot be tested');
    expect(max, 'the embedded PostgreSQL allows prepared transactions (max_prepared_transactions)').toBeGreaterThan(0);
  };

  it('a prepared write with orders.skip_notify is not delivered while prepared, and exactly once after COMMIT PREPARED', async (ctx) => {
    await requireTwoPhase(ctx);
    const existing = await insertOrder('before 2PC');
    const watcher = await Watcher.open();
    const writer = await connection();
    await writer.query('BEGIN');
    await writer.query("SET LOCAL orders.skip_notify = 'on'");
    const id = Number(
      (await writer.query<{ id: string }>("INSERT INTO orders (customer_name, product_name) VALUES ('Two', 'Phase') RETURNING id")).rows[0]
        ?.id,
    );
    await writer.query("UPDATE orders SET status = 'processing' WHERE id = $1", [existing]);
    await writer.query(`PREPARE TRANSACTION '${GID}_commit'`);

    // Prepared, not committed: several feed polls later nothing of it has been delivered.
    await sleep(600);
    expect(watcher.of(id)).toEqual([]);
    expect(watcher.of(existing)).toEqual([]);

    // Resolved from another session, as a transaction manager does.
    await db.sql.query(`COMMIT PREPARED '${GID}_commit'`);
    expect(await watcher.waitFor(id, 1)).toMatchObject({ op: 'insert', order: { customer_name: 'Two', product_name: 'Phase' } });
    expect(await watcher.waitFor(existing, 2)).toMatchObject({ op: 'update', order: { status: 'processing' } });
    await marker(watcher);
    expect(watcher.of(id)).toHaveLength(1);
    expect(watcher.of(existing)).toHaveLength(1);
  });

  it('a prepared write rolled back with ROLLBACK PREPARED is never delivered', async (ctx) => {
    await requireTwoPhase(ctx);
    const watcher = await Watcher.open();
    const writer = await connection();
    await writer.query('BEGIN');
    await writer.query("SET LOCAL orders.skip_notify = 'on'");
    const id = Number(
      (await writer.query<{ id: string }>("INSERT INTO orders (customer_name, product_name) VALUES ('Never', 'Seen') RETURNING id")).rows[0]
        ?.id,
    );
    await writer.query(`PREPARE TRANSACTION '${GID}_rollback'`);
    await sleep(300);
    await db.sql.query(`ROLLBACK PREPARED '${GID}_rollback'`);

    await marker(watcher);
    expect(watcher.of(id)).toEqual([]);
    expect(await changeRows(id)).toEqual([]);
  });
});
