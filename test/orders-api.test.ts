import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NEXT_STATUSES } from '../src/contract/statuses.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

let db: TestDatabase;
let svc: RunningService;
const api = <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  http<T>(svc.url, method, path, body, headers);

async function countOrders(): Promise<number> {
  const { rows } = await db.sql.query('SELECT count(*)::int AS n FROM orders');
  return rows[0].n;
}

function expectProblem(res: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: `/problems/${code}`, status, code });
  expect(typeof res.body.title).toBe('string');
  expect(typeof res.body.detail).toBe('string');
  expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+|SELECT|INSERT|UPDATE orders/);
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.sql.query("SELECT set_config('orders.allow_truncate', 'on', true); TRUNCATE orders RESTART IDENTITY");
});

describe('POST /orders', () => {
  it('creates an order from the README curl example verbatim', async () => {
    const res = await fetch(`${svc.url}/orders`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"customer_name":"John Doe","product_name":"Laptop","status":"pending"}',
    });
    expect(res.status).toBe(201);
    const order = (await res.json()) as Record<string, any>;
    expect(order).toMatchObject({
      id: 1,
      customer_name: 'John Doe',
      product_name: 'Laptop',
      status: 'pending',
      quantity: 1,
      total_cents: 0,
      notes: '',
      version: 1,
    });
    expect(res.headers.get('location')).toBe('/orders/1');
    expect(res.headers.get('etag')).toBe('"1"');
    expect(new Date(order.created_at).getTime()).toBeGreaterThan(Date.now() - 60_000);
    const { rows } = await db.sql.query('SELECT customer_name, status FROM orders WHERE id = 1');
    expect(rows).toEqual([{ customer_name: 'John Doe', status: 'pending' }]);
  });

  it('trims names and stores every optional field', async () => {
    const res = await api('POST', '/orders', {
      customer_name: '  Ada Lovelace ',
      product_name: 'Analytical Engine',
      quantity: 3,
      total_cents: 123456,
      notes: 'fragile',
      status: 'processing',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      customer_name: 'Ada Lovelace',
      quantity: 3,
      total_cents: 123456,
      notes: 'fragile',
      status: 'processing',
    });
  });

  it('answers 400 naming every bad field, and stores nothing', async () => {
    const res = await api('POST', '/orders', { customer_name: '   ', quantity: 0, total_cents: -1, status: 'lost', extra: true });
    expectProblem(res, 400, 'validation-failed');
    const fields = res.body.errors.map((e: { field: string }) => e.field).sort();
    expect(fields).toEqual(['customer_name', 'extra', 'product_name', 'quantity', 'status', 'total_cents']);
    expect(res.body.errors.find((e: any) => e.field === 'status').message).toMatch(/pending, processing, shipped, delivered, cancelled/);
    expect(await countOrders()).toBe(0);
  });

  it.each([
    ['a string where a number belongs', { customer_name: 'a', product_name: 'b', quantity: '5' }, 'quantity'],
    ['a fractional quantity', { customer_name: 'a', product_name: 'b', quantity: 1.5 }, 'quantity'],
    ['too large a quantity', { customer_name: 'a', product_name: 'b', quantity: 100_001 }, 'quantity'],
    ['a 201-character name', { customer_name: 'x'.repeat(201), product_name: 'b' }, 'customer_name'],
    ['10,001 characters of notes', { customer_name: 'a', product_name: 'b', notes: 'n'.repeat(10_001) }, 'notes'],
    ['null for a name', { customer_name: null, product_name: 'b' }, 'customer_name'],
  ])('answers 400 for %s', async (_label, body, field) => {
    const res = await api('POST', '/orders', body);
    expectProblem(res, 400, 'validation-failed');
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    expect(await countOrders()).toBe(0);
  });

  it('answers 400 for a body that is not an object', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const res = await api('POST', '/orders', body);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    }
    expect(await countOrders()).toBe(0);
  });

  it('answers 400 for malformed JSON', async () => {
    const res = await api('POST', '/orders', '{"customer_name": "John", ');
    expectProblem(res, 400, 'malformed-json');
    expect(await countOrders()).toBe(0);
  });

  it('answers 400 for a prototype-poisoning body', async () => {
    const res = await api('POST', '/orders', '{"customer_name":"a","product_name":"b","__proto__":{"admin":true}}');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    expect(await countOrders()).toBe(0);
  });

  it('answers 413 for a body over the limit', async () => {
    const res = await api('POST', '/orders', { customer_name: 'a', product_name: 'b', notes: 'x'.repeat(70_000) });
    expectProblem(res, 413, 'payload-too-large');
    expect(await countOrders()).toBe(0);
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await api('POST', '/orders', 'customer_name=a&product_name=b', { 'content-type': 'application/x-www-form-urlencoded' });
    expectProblem(res, 415, 'unsupported-media-type');
    const plain = await api('POST', '/orders', 'hello', { 'content-type': 'text/plain' });
    expectProblem(plain, 415, 'unsupported-media-type');
    expect(await countOrders()).toBe(0);
  });
});

describe('Idempotency-Key', () => {
  const body = { customer_name: 'Grace', product_name: 'Compiler' };

  it('replays the first response for a repeat with the same key and body', async () => {
    const first = await api('POST', '/orders', body, { 'Idempotency-Key': 'k-replay' });
    const second = await api('POST', '/orders', body, { 'Idempotency-Key': 'k-replay' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await countOrders()).toBe(1);
  });

  it('answers 422 for the same key with a different body', async () => {
    await api('POST', '/orders', body, { 'Idempotency-Key': 'k-reuse' });
    const res = await api('POST', '/orders', { ...body, quantity: 2 }, { 'Idempotency-Key': 'k-reuse' });
    expectProblem(res, 422, 'idempotency-key-reused');
    expect(await countOrders()).toBe(1);
  });

  it('creates exactly one order from twenty concurrent requests with one key', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => api('POST', '/orders', body, { 'Idempotency-Key': 'k-concurrent' })),
    );
    expect(await countOrders()).toBe(1);
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    const created = results.filter((r) => r.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.body.id)).size).toBe(1);
    for (const r of results.filter((x) => x.status === 409)) {
      expectProblem(r, 409, 'idempotency-key-in-use');
      expect(r.headers.get('retry-after')).toBe('1');
    }
  });

  it('answers 409 while the first request with the key is still in flight', async () => {
    // Hold the key's lock the way an in-flight request does: inside an open transaction.
    const holder = await db.sql.connect();
    try {
      await holder.query('BEGIN');
      // The key's lock is scoped like the key: principal ('local' with authentication off), method, path.
      await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 4242))', [
        JSON.stringify(['local', 'POST', '/orders', 'k-inflight']),
      ]);
      const res = await api('POST', '/orders', body, { 'Idempotency-Key': 'k-inflight' });
      expectProblem(res, 409, 'idempotency-key-in-use');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const after = await api('POST', '/orders', body, { 'Idempotency-Key': 'k-inflight' });
    expect(after.status).toBe(201);
    expect(await countOrders()).toBe(1);
  });

  it('rejects a key over 255 characters', async () => {
    const res = await api('POST', '/orders', body, { 'Idempotency-Key': 'k'.repeat(256) });
    expectProblem(res, 400, 'validation-failed');
    expect(await countOrders()).toBe(0);
  });
});

describe('GET /orders', () => {
  beforeEach(async () => {
    await db.sql.query(`
      INSERT INTO orders (customer_name, product_name, status, total_cents)
      SELECT 'Customer ' || i, CASE WHEN i % 3 = 0 THEN 'Widget' ELSE 'Gadget' END,
             (ARRAY['pending','processing','shipped','delivered','cancelled'])[1 + i % 5], i * 100
      FROM generate_series(1, 25) i`);
  });

  it('lists newest first with the change cursor', async () => {
    const res = await api('GET', '/orders');
    expect(res.status).toBe(200);
    expect(res.body.map((o: { id: number }) => o.id)).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    expect(res.headers.get('x-change-cursor')).toMatch(/^\d+:\d+:/);
    expect(res.headers.get('link')).toBeNull();
  });

  it('paginates with limit, before and a Link header until the end', async () => {
    const seen: number[] = [];
    let path: string | null = '/orders?limit=10';
    let pages = 0;
    while (path) {
      const res: any = await api('GET', path);
      expect(res.status).toBe(200);
      seen.push(...res.body.map((o: { id: number }) => o.id));
      const link: string | null = res.headers.get('link');
      path = link ? (/^<([^>]+)>; rel="next"$/.exec(link)?.[1] ?? null) : null;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
  });

  it('filters by one status and by several', async () => {
    const one = await api('GET', '/orders?status=shipped');
    expect(one.body.length).toBe(5);
    expect(one.body.every((o: { status: string }) => o.status === 'shipped')).toBe(true);
    const two = await api('GET', '/orders?status=shipped,cancelled');
    expect(two.body.length).toBe(10);
    expect(new Set(two.body.map((o: { status: string }) => o.status))).toEqual(new Set(['shipped', 'cancelled']));
  });

  it('searches case-insensitively in customer and product names, literally', async () => {
    const widget = await api('GET', '/orders?q=wIdGeT');
    expect(widget.body.length).toBe(8);
    const customer = await api('GET', '/orders?q=customer%2012');
    expect(customer.body.map((o: { id: number }) => o.id)).toEqual([12]);
    const wildcard = await api('GET', '/orders?q=%25');
    expect(wildcard.body).toEqual([]);
    const underscore = await api('GET', '/orders?q=_');
    expect(underscore.body).toEqual([]);
  });

  it('keeps filters in the next link', async () => {
    const res = await api('GET', '/orders?status=pending,processing&q=customer&limit=3');
    expect(res.headers.get('link')).toMatch(/status=pending%2Cprocessing&q=customer&sort=id&dir=desc&limit=3&page=[\w-]+>/);
  });

  it.each([
    ['limit=0', 'query.limit'],
    ['limit=1001', 'query.limit'],
    ['limit=ten', 'query.limit'],
    ['status=lost', 'query.status'],
    ['status=pending,,shipped', 'query.status'],
    ['before=-3', 'query.before'],
    ['bogus=1', 'query.bogus'],
  ])('answers 400 for ?%s', async (query, field) => {
    const res = await api('GET', `/orders?${query}`);
    expectProblem(res, 400, 'validation-failed');
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });
});

describe('GET /orders/:id', () => {
  it('returns the order with its version as ETag, and 304 for a matching If-None-Match', async () => {
    const created = await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    const res = await api('GET', `/orders/${created.body.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(res.body).toEqual(created.body);
    const cached = await api('GET', `/orders/${created.body.id}`, undefined, { 'If-None-Match': '"1"' });
    expect(cached.status).toBe(304);
  });

  it('answers 404 for a missing order and 400 for an id that is not one', async () => {
    expectProblem(await api('GET', '/orders/999'), 404, 'not-found');
    for (const id of ['abc', '0', '-1', '1.5', '99999999999999999999']) {
      expectProblem(await api('GET', `/orders/${id}`), 400, 'validation-failed');
    }
  });

  it('answers 404 problem+json for unknown routes', async () => {
    expectProblem(await api('GET', '/nope'), 404, 'not-found');
  });
});

describe('PUT and PATCH /orders/:id', () => {
  it('accepts {"status":"shipped"} verbatim', async () => {
    await api('POST', '/orders', { customer_name: 'John Doe', product_name: 'Laptop' });
    const res = await fetch(`${svc.url}/orders/1`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: '{"status":"shipped"}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 1, status: 'shipped', version: 2 });
    expect(res.headers.get('etag')).toBe('"2"');
    const patch = await api('PATCH', '/orders/1', { notes: 'left at the door', quantity: 2 });
    expect(patch.body).toMatchObject({ status: 'shipped', notes: 'left at the door', quantity: 2, version: 3 });
    const { rows } = await db.sql.query('SELECT version, notes FROM orders WHERE id = 1');
    expect(rows[0]).toEqual({ version: 3, notes: 'left at the door' });
  });

  it('allows exactly the forward transitions', async () => {
    const statuses = Object.keys(NEXT_STATUSES) as (keyof typeof NEXT_STATUSES)[];
    for (const from of statuses) {
      for (const to of statuses) {
        const { rows } = await db.sql.query('INSERT INTO orders (customer_name, product_name, status) VALUES ($1, $2, $3) RETURNING id', [
          't',
          'p',
          from,
        ]);
        const res = await api('PATCH', `/orders/${rows[0].id}`, { status: to });
        const allowed = from === to || NEXT_STATUSES[from].includes(to);
        if (allowed) {
          expect(res.status, `${from} → ${to}`).toBe(200);
        } else {
          expectProblem(res, 409, 'invalid-transition');
          expect(res.body.allowed_next_statuses).toEqual(NEXT_STATUSES[from]);
          const after = await db.sql.query('SELECT status, version FROM orders WHERE id = $1', [rows[0].id]);
          expect(after.rows[0]).toEqual({ status: from, version: 1 });
        }
      }
    }
  });

  it('answers 400 for an empty or unknown change, and 404 for a missing order', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    expectProblem(await api('PATCH', '/orders/1', {}), 400, 'validation-failed');
    const unknown = await api('PATCH', '/orders/1', { id: 7 });
    expectProblem(unknown, 400, 'validation-failed');
    expect(unknown.body.errors[0].field).toBe('id');
    expectProblem(await api('PATCH', '/orders/1', { version: 9 }), 400, 'validation-failed');
    expectProblem(await api('PATCH', '/orders/404', { status: 'shipped' }), 404, 'not-found');
    const { rows } = await db.sql.query('SELECT version FROM orders WHERE id = 1');
    expect(rows[0].version).toBe(1);
  });

  it('honours If-Match: 200 when current, 412 with the newer order when stale', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    const ok = await api('PATCH', '/orders/1', { notes: 'one' }, { 'If-Match': '"1"' });
    expect(ok.status).toBe(200);
    const stale = await api('PATCH', '/orders/1', { notes: 'two' }, { 'If-Match': '"1"' });
    expectProblem(stale, 412, 'precondition-failed');
    expect(stale.body.current_version).toBe(2);
    expect(stale.body.order).toMatchObject({ id: 1, notes: 'one', version: 2 });
    const bad = await api('PATCH', '/orders/1', { notes: 'three' }, { 'If-Match': 'not-an-etag' });
    expectProblem(bad, 400, 'validation-failed');
    const { rows } = await db.sql.query('SELECT notes FROM orders WHERE id = 1');
    expect(rows[0].notes).toBe('one');
  });

  it('lets exactly one of two concurrent updates with the same If-Match win', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    const [a, b] = await Promise.all([
      api('PATCH', '/orders/1', { notes: 'from A' }, { 'If-Match': '"1"' }),
      api('PATCH', '/orders/1', { notes: 'from B' }, { 'If-Match': '"1"' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 412]);
    const winner = a.status === 200 ? a : b;
    const { rows } = await db.sql.query('SELECT notes, version FROM orders WHERE id = 1');
    expect(rows[0]).toEqual({ notes: winner.body.notes, version: 2 });
  });
});

describe('DELETE /orders/:id', () => {
  it('deletes, then 404s', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    const res = await api('DELETE', '/orders/1');
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(await countOrders()).toBe(0);
    expectProblem(await api('DELETE', '/orders/1'), 404, 'not-found');
  });

  it('honours If-Match', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b' });
    await api('PATCH', '/orders/1', { notes: 'x' });
    expectProblem(await api('DELETE', '/orders/1', undefined, { 'If-Match': '"1"' }), 412, 'precondition-failed');
    expect(await countOrders()).toBe(1);
    expect((await api('DELETE', '/orders/1', undefined, { 'If-Match': '"2"' })).status).toBe(204);
    expect(await countOrders()).toBe(0);
  });
});

describe('writes by other programs', () => {
  it('shows a row written by raw SQL, with the version the database maintains', async () => {
    await db.sql.query("INSERT INTO orders (customer_name, product_name, total_cents) VALUES ('  Raw  ', 'SQL', 999)");
    await db.sql.query("UPDATE orders SET status = 'processing' WHERE customer_name = 'Raw'");
    await db.sql.query("UPDATE orders SET notes = 'twice' WHERE customer_name = 'Raw'");
    const res = await api('GET', '/orders');
    expect(res.body).toHaveLength(1);
    expect(res.body[0]).toMatchObject({
      customer_name: 'Raw',
      product_name: 'SQL',
      status: 'processing',
      notes: 'twice',
      version: 3,
      total_cents: 999,
    });
    expect(new Date(res.body[0].updated_at).getTime()).toBeGreaterThanOrEqual(new Date(res.body[0].created_at).getTime());
  });

  it('refuses invalid rows from raw SQL too', async () => {
    await expect(db.sql.query("INSERT INTO orders (customer_name, product_name, status) VALUES ('a', 'b', 'lost')")).rejects.toMatchObject({
      code: '23514',
    });
    await expect(db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('   ', 'b')")).rejects.toMatchObject({
      code: '23514',
    });
  });
});

describe('GET /orders/stats', () => {
  it('counts and sums per status and per minute', async () => {
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b', total_cents: 1000 });
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b', total_cents: 500, status: 'shipped' });
    await api('POST', '/orders', { customer_name: 'a', product_name: 'b', total_cents: 250, status: 'shipped' });
    await db.sql.query("INSERT INTO orders (customer_name, product_name, created_at) VALUES ('old', 'x', now() - interval '2 hours')");
    const res = await api('GET', '/orders/stats');
    expect(res.status).toBe(200);
    expect(res.body.total_orders).toBe(4);
    expect(res.body.total_cents).toBe(1750);
    expect(res.body.by_status).toEqual({ pending: { count: 2, total_cents: 1000 }, shipped: { count: 2, total_cents: 750 } });
    expect(res.body.per_minute).toHaveLength(60);
    expect(res.body.per_minute.reduce((s: number, m: { count: number }) => s + m.count, 0)).toBe(3);
  });
});
