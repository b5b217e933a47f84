import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { listMigrations } from '../src/db/migrate.js';
import { formatCents, parseStatsJson } from '../web/src/money.js';
import { createTestDatabase, databaseUrl, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

/**
 * Money has one ceiling, total_cents ≤ 10^12 ($10 billion), the same on create, PATCH and PUT and for
 * raw SQL writers (a CHECK constraint); /orders/stats sums it exactly however many rows there are.
 */
const CEILING = 1_000_000_000_000;

let db: TestDatabase;
let svc: RunningService;
const api = <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  http<T>(svc.url, method, path, body, headers);

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

function expectFieldRefused(res: { status: number; headers: Headers; body: any }, field: string) {
  expect(res.status).toBe(400);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe('validation-failed');
  expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual([field]);
}

async function snapshot(): Promise<unknown[]> {
  return (await db.sql.query('SELECT id, total_cents::text, version FROM orders ORDER BY id')).rows;
}

/** The digits of a JSON number as the server wrote them (JSON.parse would round them past 2^53). */
function rawNumber(text: string, path: RegExp): string | undefined {
  return path.exec(text)?.[1];
}

describe('the total_cents ceiling', () => {
  it('accepts the ceiling on create and returns it exactly', async () => {
    const res = await api('POST', '/orders', { customer_name: 'Big', product_name: 'Ticket', total_cents: CEILING });
    expect(res.status).toBe(201);
    expect(res.body.total_cents).toBe(CEILING);
    const { rows } = await db.sql.query('SELECT total_cents::text AS t FROM orders');
    expect(rows).toEqual([{ t: String(CEILING) }]);
  });

  it('refuses ceiling + 1 on create with a 400 naming total_cents, and creates nothing', async () => {
    const res = await api('POST', '/orders', { customer_name: 'Big', product_name: 'Ticket', total_cents: CEILING + 1 });
    expectFieldRefused(res, 'total_cents');
    expect(await snapshot()).toEqual([]);
  });

  it('refuses ceiling + 1 (and 2^53 − 1) on PATCH and PUT, changing nothing; accepts the ceiling', async () => {
    const created = await api('POST', '/orders', { customer_name: 'Small', product_name: 'Ticket', total_cents: 100 });
    expect(created.status).toBe(201);
    const before = await snapshot();
    for (const method of ['PATCH', 'PUT']) {
      for (const total of [CEILING + 1, Number.MAX_SAFE_INTEGER]) {
        const res = await api(method, '/orders/1', { total_cents: total });
        expectFieldRefused(res, 'total_cents');
        expect(await snapshot()).toEqual(before);
      }
    }
    const atCeiling = await api('PATCH', '/orders/1', { total_cents: CEILING });
    expect(atCeiling.status).toBe(200);
    expect(atCeiling.body.total_cents).toBe(CEILING);
  });

  it('binds raw SQL writers too (a CHECK constraint)', async () => {
    await expect(
      db.sql.query('INSERT INTO orders (customer_name, product_name, total_cents) VALUES ($1, $2, $3)', [
        'Raw',
        'SQL',
        String(CEILING + 1),
      ]),
    ).rejects.toMatchObject({ code: '23514' });
    await db.sql.query('INSERT INTO orders (customer_name, product_name, total_cents) VALUES ($1, $2, $3)', [
      'Raw',
      'SQL',
      String(CEILING),
    ]);
    await expect(db.sql.query('UPDATE orders SET total_cents = total_cents + 1')).rejects.toMatchObject({ code: '23514' });
    expect((await snapshot()).map((o: any) => [o.total_cents, o.version])).toEqual([[String(CEILING), 1]]);
  });
});

describe('GET /orders/stats with many rows at the ceiling', () => {
  it('sums exactly past 2^53 and renders the sums as exact JSON integers', async () => {
    // 12,000 rows at the ceiling plus a few odd totals: 1.2 × 10^16 + 7, beyond 2^53 and not a double.
    await db.sql.query(`
      INSERT INTO orders (customer_name, product_name, total_cents, status)
      SELECT 'Whale ' || i, 'Yacht', ${CEILING}, CASE WHEN i % 2 = 0 THEN 'pending' ELSE 'shipped' END
      FROM generate_series(1, 12000) i`);
    await db.sql.query(`
      INSERT INTO orders (customer_name, product_name, total_cents, status)
      VALUES ('Odd', 'Change', 3, 'pending'), ('Odd', 'Change', 4, 'shipped')`);
    const expected = (
      await db.sql.query<{ total: string; pending: string; shipped: string }>(`
        SELECT sum(total_cents)::text AS total,
               sum(total_cents) FILTER (WHERE status = 'pending')::text AS pending,
               sum(total_cents) FILTER (WHERE status = 'shipped')::text AS shipped
        FROM orders`)
    ).rows[0];
    expect(BigInt(expected?.total ?? 0)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));

    const res = await api('GET', '/orders/stats');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(rawNumber(res.text, /^\{[^{]*"total_cents"\s*:\s*(\d+)/)).toBe(expected?.total);
    expect(rawNumber(res.text, /"pending"\s*:\s*\{[^}]*"total_cents"\s*:\s*(\d+)/)).toBe(expected?.pending);
    expect(rawNumber(res.text, /"shipped"\s*:\s*\{[^}]*"total_cents"\s*:\s*(\d+)/)).toBe(expected?.shipped);
    expect(res.body.total_orders).toBe(12_002);
    expect(res.body.by_status.pending.count).toBe(6001);
    expect(res.body.per_minute).toHaveLength(60);

    // The dashboard's reading of the same text keeps every digit, and shows them.
    const stats = parseStatsJson(res.text);
    expect(stats.total_cents).toBe(BigInt(expected?.total ?? 0));
    expect(stats.by_status.pending?.total_cents).toBe(BigInt(expected?.pending ?? 0));
    expect(formatCents(stats.total_cents).replace(/[^\d.]/g, '')).toBe(`${expected?.total.slice(0, -2)}.${expected?.total.slice(-2)}`);
  });

  it('answers 200 with zeros on an empty table', async () => {
    const res = await api('GET', '/orders/stats');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total_orders: 0, total_cents: 0, by_status: {} });
  });
});

describe('rows above the ceiling written before it existed', () => {
  it('still sum exactly, past what a bigint holds; an update that keeps them above it is a 400', async () => {
    // What the finding did through PATCH: ~1,100 orders at 2^53 − 1, whose sum (≈ 9.9 × 10^18) overflows
    // bigint. The migration leaves its constraint NOT VALID when such rows exist; recreate that state.
    await db.sql.query('ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_total_cents_ceiling');
    try {
      await db.sql.query(`
        INSERT INTO orders (customer_name, product_name, total_cents)
        SELECT 'Legacy ' || i, 'Overflow', ${Number.MAX_SAFE_INTEGER} FROM generate_series(1, 1100) i`);
      await db.sql.query('ALTER TABLE orders ADD CONSTRAINT orders_total_cents_ceiling CHECK (total_cents <= 1000000000000) NOT VALID');
      const expected = (await db.sql.query('SELECT sum(total_cents)::text AS t FROM orders')).rows[0].t as string;
      expect(BigInt(expected)).toBeGreaterThan(2n ** 63n - 1n);

      const res = await api('GET', '/orders/stats');
      expect(res.status).toBe(200);
      expect(rawNumber(res.text, /^\{[^{]*"total_cents"\s*:\s*(\d+)/)).toBe(expected);
      expect(parseStatsJson(res.text).by_status.pending?.total_cents).toBe(BigInt(expected));

      const before = await snapshot();
      const res2 = await api('PATCH', '/orders/1', { notes: 'still too much' });
      expect(res2.status).toBe(400);
      expect(res2.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await snapshot()).toEqual(before);
      expect((await api('PATCH', '/orders/1', { total_cents: CEILING })).status).toBe(200);
    } finally {
      await db.sql.query("SELECT set_config('orders.allow_truncate', 'on', true); TRUNCATE orders RESTART IDENTITY");
      await db.sql.query('ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_total_cents_ceiling');
      await db.sql.query('ALTER TABLE orders ADD CONSTRAINT orders_total_cents_ceiling CHECK (total_cents <= 1000000000000)');
    }
  });
});

describe('migration 0005 on a database with data', () => {
  async function withFreshDatabase(fn: (client: pg.Client, migrate: (upTo: number) => Promise<void>) => Promise<void>) {
    const adminUrl = inject('adminUrl');
    const name = `orders_money_migration_${Date.now()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const client = new pg.Client({ connectionString: databaseUrl(adminUrl, name) });
    try {
      await client.connect();
      const files = await listMigrations();
      let applied = 0;
      const migrate = async (upTo: number) => {
        for (const m of files.filter((f) => f.version > applied && f.version <= upTo)) {
          await client.query('BEGIN');
          await client.query(await readFile(m.file, 'utf8'));
          await client.query('COMMIT');
        }
        applied = upTo;
      };
      await fn(client, migrate);
    } finally {
      await client.end().catch(() => undefined);
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  }

  it('validates the ceiling when every row is within it, keeping the data; drops unscoped idempotency keys', async () => {
    await withFreshDatabase(async (client, migrate) => {
      await migrate(4);
      await client.query(`INSERT INTO orders (customer_name, product_name, total_cents) VALUES ('a', 'b', 0), ('c', 'd', ${CEILING})`);
      await client.query(`INSERT INTO idempotency_keys (key, request_hash, status_code, headers, body) VALUES ('k', 'h', 201, '{}', '{}')`);
      await migrate(5);
      expect((await client.query('SELECT count(*)::int AS n FROM idempotency_keys')).rows).toEqual([{ n: 0 }]);
      const pk = await client.query(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'idempotency_keys'::regclass AND contype = 'p'",
      );
      expect(pk.rows).toEqual([{ def: 'PRIMARY KEY (principal, method, path, key)' }]);
      const { rows } = await client.query("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_cents_ceiling'");
      expect(rows).toEqual([{ convalidated: true }]);
      expect((await client.query('SELECT total_cents::text AS t FROM orders ORDER BY id')).rows).toEqual([
        { t: '0' },
        { t: String(CEILING) },
      ]);
    });
  });

  it('still applies when older rows are above it, leaving them and the constraint NOT VALID', async () => {
    await withFreshDatabase(async (client, migrate) => {
      await migrate(4);
      await client.query(`INSERT INTO orders (customer_name, product_name, total_cents) VALUES ('a', 'b', ${Number.MAX_SAFE_INTEGER})`);
      await migrate(5);
      const { rows } = await client.query("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_cents_ceiling'");
      expect(rows).toEqual([{ convalidated: false }]);
      expect((await client.query('SELECT total_cents::text AS t FROM orders')).rows).toEqual([{ t: String(Number.MAX_SAFE_INTEGER) }]);
      await expect(
        client.query(`INSERT INTO orders (customer_name, product_name, total_cents) VALUES ('a', 'b', ${CEILING + 1})`),
      ).rejects.toMatchObject({ code: '23514' });
    });
  });
});

describe('dashboard money formatting', () => {
  it('shows cents exactly, also for sums beyond 2^53', () => {
    const digits = (s: string) => s.replace(/[^\d.]/g, '');
    expect(digits(formatCents(0))).toBe('0.00');
    expect(digits(formatCents(5))).toBe('0.05');
    expect(digits(formatCents(123450))).toBe('1234.50');
    expect(digits(formatCents(CEILING))).toBe('10000000000.00');
    expect(digits(formatCents(CEILING - 1))).toBe('9999999999.99');
    expect(digits(formatCents(Number.MAX_SAFE_INTEGER))).toBe('90071992547409.91');
    expect(digits(formatCents(12_000_000_000_000_007n))).toBe('120000000000000.07');
    expect(formatCents(-250)).toMatch(/^-.*2\.50$/);
  });
});
