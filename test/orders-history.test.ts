import fc from 'fast-check';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import { HistoryRetention } from '../src/orders/history-retention.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

/**
 * Order timelines (issue 14): GET /orders/:id/history names who made each change (a token's name and
 * role; for any other writer its database user and application_name, which it cannot dress up as a
 * token), when, what and why, pages with a keyset, and keeps HISTORY_RETENTION_DAYS.
 */
let db: TestDatabase;
let svc: RunningService;
const tokens = { operator: generateToken(), viewer: generateToken(), scoped: generateToken(), admin: generateToken() };
const as = (who: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[who]}` });
const opened: pg.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const add = (name: string, role: string, token: string, scope: string | null = null) =>
    db.sql.query('INSERT INTO api_tokens (name, role, token_hash, scope) VALUES ($1, $2, $3, $4)', [name, role, hashToken(token), scope]);
  await add('packing station 3', 'operator', tokens.operator);
  await add('wall screen', 'viewer', tokens.viewer);
  await add('processing screen', 'viewer', tokens.scoped, 'status=processing');
  await add('boss', 'admin', tokens.admin);
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  for (const c of opened) await c.end().catch(() => undefined);
  await svc?.close();
  await db?.drop();
});

async function client(options: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(options);
  opened.push(c);
  await c.connect();
  return c;
}

async function history(id: number, who: keyof typeof tokens = 'viewer', query = '') {
  return http(svc.url, 'GET', `/orders/${id}/history${query}`, undefined, as(who));
}

async function create(customer = 'Ada'): Promise<number> {
  const res = await http(svc.url, 'POST', '/orders', { customer_name: customer, product_name: 'Lamp', total_cents: 1200 }, as('operator'));
  expect(res.status).toBe(201);
  return res.body.id;
}

describe('GET /orders/:id/history', () => {
  it('tells every change: who (token or database user and application), when, what, and why', async () => {
    const id = await create();
    const moved = await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'processing' }, as('operator'));
    expect(moved.status).toBe(200);
    const importer = await client({ connectionString: db.url, application_name: 'nightly-import' });
    await importer.query('UPDATE orders SET total_cents = 1500, notes = $2 WHERE id = $1', [id, 'repriced']);
    const cancelled = await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: '  customer called  ' }, as('operator'));
    expect(cancelled.status).toBe(200);

    const res = await history(id);
    expect(res.status).toBe(200);
    const dbUser = (await db.sql.query('SELECT session_user AS u')).rows[0].u;
    expect(res.body.map((e: { version: number }) => e.version)).toEqual([4, 3, 2, 1]);
    const token = { kind: 'token', name: 'packing station 3', role: 'operator' };
    expect(res.body).toMatchObject([
      { op: 'update', changes: { status: ['processing', 'cancelled'] }, reason: 'customer called', actor: token },
      {
        op: 'update',
        changes: { total_cents: [1200, 1500], notes: ['', 'repriced'] },
        reason: null,
        actor: { kind: 'database', user: dbUser, application: 'nightly-import' },
      },
      { op: 'update', changes: { status: ['pending', 'processing'] }, actor: token },
      {
        op: 'insert',
        changes: { customer_name: [null, 'Ada'], product_name: [null, 'Lamp'], total_cents: [null, 1200], status: [null, 'pending'] },
        actor: token,
      },
    ]);
    // Exact times, newest first, as written (UTC, microseconds).
    const times = res.body.map((e: { at: string }) => e.at);
    for (const t of times) expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect([...times].sort().reverse()).toEqual(times);
    // The service's actor is transaction-local: the same pooled connections write later without it.
    expect(Object.keys(res.body[0].changes)).toEqual(['status']);
  });

  it('never shows another program as a token, whatever it claims in app.actor', async () => {
    const id = await create('Forged');
    await db.sql.query(
      `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'history_forger') THEN CREATE ROLE history_forger LOGIN PASSWORD 'pw-forger'; END IF; END $$`,
    );
    await db.sql.query('GRANT SELECT, UPDATE ON orders TO history_forger');
    const url = new URL(db.url);
    url.username = 'history_forger';
    url.password = 'pw-forger';
    const forger = await client({ connectionString: url.toString(), application_name: 'sneaky' });
    await forger.query('BEGIN');
    await forger.query(`SELECT set_config('app.actor', $1, true)`, [
      JSON.stringify({ credential: 'db:1', name: 'packing station 3', role: 'operator' }),
    ]);
    await forger.query("UPDATE orders SET notes = 'not me' WHERE id = $1", [id]);
    await forger.query('COMMIT');
    // Garbage in the setting does not fail the writer's statement either.
    await forger.query('BEGIN');
    await forger.query("SELECT set_config('app.actor', '{not json', true), set_config('app.reason', repeat('x', 5000), true)");
    await forger.query("UPDATE orders SET notes = 'still not me' WHERE id = $1", [id]);
    await forger.query('COMMIT');

    const res = await history(id);
    expect(res.body.slice(0, 2)).toMatchObject([
      { actor: { kind: 'database', user: 'history_forger', application: 'sneaky' } },
      { actor: { kind: 'database', user: 'history_forger', application: 'sneaky' }, changes: { notes: ['', 'not me'] } },
    ]);
    expect(res.body[0].reason).toHaveLength(500);
  });

  it('pages with a keyset (Link rel=next) and returns each entry once', async () => {
    const id = await create('Pages');
    for (let i = 1; i <= 6; i++) {
      expect((await http(svc.url, 'PATCH', `/orders/${id}`, { notes: `note ${i}` }, as('operator'))).status).toBe(200);
    }
    const seen: number[] = [];
    let path: string | null = `/orders/${id}/history?limit=3`;
    while (path) {
      const res: { status: number; headers: Headers; body: { version: number }[] } = await http(
        svc.url,
        'GET',
        path,
        undefined,
        as('viewer'),
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.map((e) => e.version));
      path = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null;
    }
    expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
  });

  it('keeps a deleted order’s history, with who deleted it', async () => {
    const id = await create('Gone');
    expect((await http(svc.url, 'DELETE', `/orders/${id}`, undefined, as('admin'))).status).toBe(204);
    const res = await history(id);
    expect(res.status).toBe(200);
    expect(res.body[0]).toMatchObject({ op: 'delete', version: 2, changes: {}, actor: { kind: 'token', name: 'boss', role: 'admin' } });
  });

  it('records exactly the fields that changed, for every column of an order (random writes by another program)', async () => {
    // The trigger names its columns (migration 0016): a column added to orders without adding it there
    // would go unrecorded, so the list it records is compared with the table's own.
    const { rows: columns } = await db.sql.query<{ name: string }>(
      "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'orders' AND table_schema = current_schema() ORDER BY column_name",
    );
    const tracked = columns.map((c) => c.name).filter((c) => !['id', 'version', 'created_at', 'updated_at'].includes(c));
    const id = await create('Grace');
    const first = await history(id);
    expect(Object.keys(first.body[0].changes).sort()).toEqual(tracked);

    const writer = await client({ connectionString: db.url, application_name: 'random-writer' });
    const read = async () => (await writer.query('SELECT * FROM orders WHERE id = $1', [id])).rows[0];
    const value = {
      customer_name: fc.constantFrom('Grace', 'grace', 'Grace ', 'Zoë', 'O’Brien'),
      product_name: fc.constantFrom('Lamp', 'lamp', 'Desk'),
      quantity: fc.integer({ min: 1, max: 3 }),
      total_cents: fc.constantFrom(1200, 0, 99, 1_000_000_000_000),
      notes: fc.constantFrom('', 'x', 'a\nb', '{"json": true}'),
      status: fc.constantFrom('pending', 'processing', 'shipped'),
    };
    const change = fc.record(value, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(change, async (set) => {
        const before = await read();
        const names = Object.keys(set) as (keyof typeof set)[];
        const assignments = names.length > 0 ? names.map((n, i) => `${n} = $${i + 2}`).join(', ') : 'notes = notes';
        await writer.query(`UPDATE orders SET ${assignments} WHERE id = $1`, [id, ...names.map((n) => set[n])]);
        const after = await read();
        const expected: Record<string, [unknown, unknown]> = {};
        for (const c of tracked) if (String(before[c]) !== String(after[c])) expected[c] = [before[c], after[c]];
        const entry = (await history(id, 'viewer', '?limit=1')).body[0];
        expect(entry.version).toBe(after.version);
        // total_cents is a bigint: node-postgres reads it as a string, the history as a JSON number.
        expect(entry.changes).toEqual(
          Object.fromEntries(Object.entries(expected).map(([k, [o, n]]) => [k, k === 'total_cents' ? [Number(o), Number(n)] : [o, n]])),
        );
      }),
      { numRuns: 40, seed: 16 },
    );
  });

  it('refuses bad input with problem+json and changes nothing', async () => {
    for (const path of ['/orders/abc/history', '/orders/1/history?limit=0', '/orders/1/history?before=-3', '/orders/1/history?page=2']) {
      const res = await http(svc.url, 'GET', path, undefined, as('viewer'));
      expect(res.status, path).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    const missing = await history(999_999);
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('not-found');
    expect((await http(svc.url, 'GET', '/orders/1/history')).status).toBe(401);

    const id = await create('Reasonless');
    const before = await history(id);
    const onlyReason = await http(svc.url, 'PATCH', `/orders/${id}`, { reason: 'just because' }, as('operator'));
    expect(onlyReason.status).toBe(400);
    expect(onlyReason.body.code).toBe('validation-failed');
    const tooLong = await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: 'x'.repeat(501) }, as('operator'));
    expect(tooLong.status).toBe(400);
    expect((await history(id)).body).toEqual(before.body);
  });

  it('respects a scoped token: the history of an order outside its scope is 404', async () => {
    const id = await create('Scoped');
    expect((await history(id, 'scoped')).status).toBe(404);
    await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'processing' }, as('operator'));
    const res = await history(id, 'scoped');
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(2);
    const recent = await http(svc.url, 'GET', '/orders/history?limit=1000', undefined, as('scoped'));
    expect(new Set(recent.body.map((e: { order_id: number }) => e.order_id))).toEqual(
      new Set((await db.sql.query("SELECT id FROM orders WHERE status = 'processing'")).rows.map((r) => Number(r.id))),
    );
  });
});

describe('GET /orders/history', () => {
  it('lists the latest entries of all orders, and only newer ones with after', async () => {
    const all = await http(svc.url, 'GET', '/orders/history?limit=5', undefined, as('viewer'));
    expect(all.status).toBe(200);
    expect(all.body).toHaveLength(5);
    const newest = all.body[0].id as number;
    const id = await create('Later');
    const after = await http(svc.url, 'GET', `/orders/history?after=${newest}`, undefined, as('viewer'));
    expect(after.body).toMatchObject([{ order_id: id, op: 'insert', actor: { name: 'packing station 3' } }]);
  });
});

describe('retention', () => {
  it('forgets entries older than HISTORY_RETENTION_DAYS and keeps the rest', async () => {
    const id = await create('Old');
    await http(svc.url, 'PATCH', `/orders/${id}`, { notes: 'recent' }, as('operator'));
    await db.sql.query("UPDATE order_history SET changed_at = now() - interval '91 days' WHERE order_id = $1 AND version = 1", [id]);
    const retention = new HistoryRetention({ db: svc.service.db, log: pino({ level: 'silent' }), days: 90, intervalMs: 60_000 });
    retention.start(60_000);
    try {
      expect(await retention.runOnce()).toBe(1);
    } finally {
      retention.stop();
    }
    expect((await history(id)).body.map((e: { version: number }) => e.version)).toEqual([2]);
  });
});
