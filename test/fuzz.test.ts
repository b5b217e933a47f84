import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { type RunningService, startService } from './helpers/service.js';

/**
 * Hostile input, generated: thousands of requests built from the API's own field list with wrong types,
 * oversized and deeply nested values, strange content types and malformed JSON. Whatever comes in: no
 * 5xx, every error is problem+json, and a rejected request leaves the database exactly as it was.
 */
let db: TestDatabase;
let svc: RunningService;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
  await db.sql.query("INSERT INTO orders (customer_name, product_name) SELECT 'Seed ' || i, 'Item' FROM generate_series(1, 5) i");
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

const FIELDS = ['customer_name', 'product_name', 'quantity', 'total_cents', 'notes', 'status'];

const nasty = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 30, unit: 'grapheme' }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    "'; DROP TABLE orders; --",
    '<img src=x onerror=alert(1)>',
    '$' + '{7*7}', // template injection probe
    '%00',
    '../../etc/passwd',
    'x'.repeat(201),
    'x'.repeat(10_001),
    '\ud800',
  ),
  fc.integer(),
  fc.constantFrom(0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 100_001, 2 ** 31),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
  fc.constantFrom('pending', 'shipped', 'delivered', 'PENDING', 'lost'),
);

const deep = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

const body = fc.oneof(
  fc
    .dictionary(fc.constantFrom(...FIELDS, '__proto__', 'constructor', 'id', 'version', 'extra'), nasty, { maxKeys: 8 })
    .map((o) => JSON.stringify(o)),
  fc.record({ customer_name: nasty, product_name: nasty }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.string({ maxLength: 50 }),
  fc.constantFrom(
    '{',
    '{"customer_name":',
    '[]',
    'null',
    '""',
    '{"__proto__":{"polluted":1},"customer_name":"a","product_name":"b"}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    deep(10_000),
    `{"a":${deep(5000)}}`,
    JSON.stringify({ customer_name: 'a', product_name: 'b', notes: 'x'.repeat(70_000) }),
  ),
);

const path = fc.oneof(
  fc.constant('/orders'),
  fc.constant('/orders/stats'),
  fc.constantFrom(
    '/orders/1',
    '/orders/2',
    '/orders/999999',
    '/orders/0',
    '/orders/-1',
    '/orders/1.5',
    '/orders/abc',
    '/orders/1e3',
    '/orders/%00',
    '/orders/9999999999999999999999',
  ),
  fc
    .dictionary(
      fc.constantFrom('status', 'q', 'limit', 'before', 'junk'),
      fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String)),
      { maxKeys: 4 },
    )
    .map((q) => `/orders?${new URLSearchParams(q).toString()}`),
  fc.constantFrom('/orders/1/../../etc/passwd', '/..%2f..%2fetc/passwd', '/orders%2f1', '/ORDERS', '/orders//1'),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'garbage',
  undefined,
);

const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD');

/** Every write to orders, by any path, adds a row to the change log; idempotency keys are the only other state. */
async function fingerprint(): Promise<string> {
  const { rows } = await db.sql.query(
    'SELECT (SELECT max(seq) FROM order_changes) AS last_change, (SELECT count(*) FROM idempotency_keys) AS keys, (SELECT count(*) FROM orders) AS orders',
  );
  return JSON.stringify(rows[0]);
}

it('answers thousands of hostile requests without a 5xx, with problem+json, changing nothing when it refuses', {
  timeout: 120_000,
}, async () => {
  let requests = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(method, path, body, contentType, fc.option(fc.string({ maxLength: 300 })), async (m, p, b, ct, idemKey) => {
      const before = await fingerprint();
      const headers: Record<string, string> = {};
      if (ct) headers['content-type'] = ct;
      if (idemKey !== null && m === 'POST') headers['idempotency-key'] = idemKey.replace(/[^\x21-\x7e]/g, '') || 'k';
      const hasBody = m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS';
      const res = await fetch(svc.url + p, { method: m, headers, body: hasBody ? b : undefined });
      const text = await res.text();
      requests++;
      expect(res.status, `${m} ${p} ${ct} ${b.slice(0, 80)}`).toBeLessThan(500);
      if (res.status >= 400) {
        refused++;
        if (m !== 'HEAD') {
          expect(res.headers.get('content-type'), `${m} ${p}`).toMatch(/^application\/problem\+json/);
          const problem = JSON.parse(text);
          expect(typeof problem.code).toBe('string');
          expect(problem.status).toBe(res.status);
          expect(text).not.toMatch(/\bat .*\.(ts|js):\d+|SELECT |INSERT |syntax error/);
        }
        expect(await fingerprint(), `${m} ${p} changed the database though refused`).toBe(before);
      }
    }),
    { numRuns: 2500 },
  );
  expect(requests).toBe(2500);
  expect(refused).toBeGreaterThan(1000);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

it('stores and matches SQL-injection strings literally', async () => {
  const seeds = async () => (await db.sql.query("SELECT count(*)::int AS n FROM orders WHERE customer_name LIKE 'Seed %'")).rows[0].n;
  const seedsBefore = await seeds();
  const evil = ["'; DROP TABLE orders; --", "' OR '1'='1", 'Robert"); DELETE FROM orders; --', '%_\\'];
  for (const s of evil) {
    const res = await fetch(`${svc.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customer_name: s, product_name: s, notes: s }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: number; customer_name: string };
    expect(created.customer_name).toBe(s);
    const found = (await (await fetch(`${svc.url}/orders?q=${encodeURIComponent(s)}`)).json()) as {
      id: number;
      customer_name: string;
      product_name: string;
    }[];
    expect(found.map((o) => o.id)).toContain(created.id);
    // Literally: every order found holds every word of the string. (Not only ours: the first test's
    // thousands of random requests create orders, and one of them can hold these words by chance; a
    // search the string broke out of would find orders that do not.)
    const words = s.toLowerCase().split(/\s+/).filter(Boolean);
    for (const o of found) for (const w of words) expect(`${o.customer_name}\n${o.product_name}`.toLowerCase()).toContain(w);
    const filtered = await fetch(`${svc.url}/orders?status=${encodeURIComponent(s)}`);
    expect(filtered.status).toBe(400);
  }
  expect(await seeds()).toBe(seedsBefore);
  expect((await db.sql.query("SELECT to_regclass('orders') IS NOT NULL AS exists")).rows[0].exists).toBe(true);
});
