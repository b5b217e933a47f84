import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import type { Order } from '../src/contract/protocol.js';
import { comparePositions, firstDirection, positionOf, SORT_KEYS } from '../src/contract/sort-order.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

/**
 * GET /orders sorted by any column, a keyset page at a time, with the view's total and the page's
 * offset (the "1–50 of 730" of the dashboard), and GET /orders.csv, the same view as one consistent file.
 */
let db: TestDatabase;
let svc: RunningService;
const viewer = generateToken();
const scoped = generateToken();
const admin = generateToken();
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const get = (path: string, token = admin) => http<any>(svc.url, 'GET', path, undefined, as(token));

beforeAll(async () => {
  db = await createTestDatabase();
  const add = (name: string, role: string, token: string, scope: string | null) =>
    db.sql.query('INSERT INTO api_tokens (name, role, token_hash, scope) VALUES ($1, $2, $3, $4)', [name, role, hashToken(token), scope]);
  await add('viewer', 'viewer', viewer, null);
  await add('packing', 'viewer', scoped, 'status=processing');
  await add('admin', 'admin', admin, null);
  // Duplicate names, totals and quantities (ties), mixed case and non-ASCII names.
  await db.sql.query(`
    INSERT INTO orders (customer_name, product_name, quantity, total_cents, status)
    SELECT (ARRAY['ada','Ada','Bob','émile','Zoë','zed','Ω corp','åsa'])[1 + i % 8] || ' ' || (i % 5),
           (ARRAY['Lamp','desk','Chair'])[1 + i % 3], 1 + i % 7, (i * 7919) % 1000 * 100,
           (ARRAY['pending','processing','shipped','delivered','cancelled'])[1 + i % 5]
    FROM generate_series(1, 130) i`);
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

/** Follows the Link headers from `path`; returns every order and each page's headers. */
async function walk(path: string): Promise<{ orders: Order[]; pages: { total: number; offset: number; count: number }[] }> {
  const orders: Order[] = [];
  const pages: { total: number; offset: number; count: number }[] = [];
  for (let next: string | null = path; next; ) {
    const res = await get(next);
    expect(res.status, res.text).toBe(200);
    orders.push(...res.body);
    pages.push({
      total: Number(res.headers.get('x-total-count')),
      offset: Number(res.headers.get('x-page-offset')),
      count: res.body.length,
    });
    const link: string | null = res.headers.get('link');
    next = link ? (/^<([^>]+)>; rel="next"$/.exec(link)?.[1] ?? null) : null;
  }
  return { orders, pages };
}

describe('GET /orders sorted and paged', () => {
  it.each(SORT_KEYS.flatMap((k) => [[k, 'asc'] as const, [k, 'desc'] as const]))(
    'sort=%s dir=%s: the pages together are every order once, in the shared order, with total and offsets',
    async (sort, dir) => {
      const { orders, pages } = await walk(`/orders?sort=${sort}&dir=${dir}&limit=40`);
      expect(orders).toHaveLength(130);
      const sorted = [...orders].sort((a, b) => comparePositions(sort, dir, positionOf(a, sort), positionOf(b, sort)));
      expect(orders.map((o) => o.id)).toEqual(sorted.map((o) => o.id));
      expect(pages.map((p) => [p.total, p.offset, p.count])).toEqual([
        [130, 0, 40],
        [130, 40, 40],
        [130, 80, 40],
        [130, 120, 10],
      ]);
    },
  );

  it('sorts by created_at newest first on the first click, by creation time and not by id, ties kept apart', async () => {
    expect(firstDirection('created_at')).toBe('desc');
    // Back-dated orders (an import, a replayed queue), so creation order is not id order, with ties in
    // one second a microsecond apart, which a page token that kept only milliseconds would lose.
    await db.sql.query(`
      INSERT INTO orders (customer_name, product_name, created_at)
      SELECT 'Dated ' || i, 'Thing', timestamptz '2026-03-01 12:00:00Z' - make_interval(secs => (i * 7919) % 7 + (i % 3) * 0.000001)
      FROM generate_series(1, 45) i`);
    try {
      const { orders, pages } = await walk('/orders?q=dated&sort=created_at&limit=10');
      const { rows } = await db.sql.query<{ id: string }>(
        "SELECT id FROM orders WHERE customer_name LIKE 'Dated %' ORDER BY created_at DESC, id DESC",
      );
      const expected = rows.map((r) => Number(r.id));
      expect(orders.map((o) => o.id)).toEqual(expected);
      expect(expected).not.toEqual([...expected].sort((a, b) => b - a));
      expect(pages.map((p) => [p.total, p.offset])).toEqual([0, 10, 20, 30, 40].map((n) => [45, n]));
      expect(orders[0]?.created_at).toBe('2026-03-01T12:00:00.000000Z');
      const asc = await walk('/orders?q=dated&sort=created_at&dir=asc&limit=10');
      expect(asc.orders.map((o) => o.id)).toEqual([...expected].reverse());
    } finally {
      await db.sql.query("DELETE FROM orders WHERE customer_name LIKE 'Dated %'");
    }
  });

  it('sorts names A→Z by default, case-insensitively; numbers largest first', async () => {
    expect(firstDirection('customer_name')).toBe('asc');
    const names = (await get('/orders?sort=customer_name&limit=1000')).body.map((o: Order) => o.customer_name);
    expect(names[0]).toMatch(/^ada 0|^Ada 0/);
    expect(names.slice(0, 32).every((n: string) => /^ada /i.test(n))).toBe(true);
    const totals = (await get('/orders?sort=total_cents&limit=5')).body.map((o: Order) => o.total_cents);
    const { rows } = await db.sql.query<{ max: string }>('SELECT max(total_cents) AS max FROM orders');
    expect(totals[0]).toBe(Number(rows[0]?.max));
  });

  it('applies status and search on the server: total and pages count only the view', async () => {
    const { orders, pages } = await walk('/orders?status=shipped,pending&q=ADA&sort=total_cents&limit=5');
    const { rows } = await db.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM orders WHERE status IN ('shipped','pending') AND lower(customer_name) LIKE '%ada%'",
    );
    expect(orders.length).toBe(rows[0]?.n);
    expect(pages[0]?.total).toBe(rows[0]?.n);
    expect(orders.every((o) => ['shipped', 'pending'].includes(o.status) && /ada/i.test(o.customer_name))).toBe(true);
  });

  it('keeps its place while rows change: no row that stayed put is skipped or repeated', async () => {
    const first = await get('/orders?sort=total_cents&dir=desc&limit=30');
    const link = /^<([^>]+)>/.exec(first.headers.get('link') ?? '')?.[1] as string;
    const shown = first.body.map((o: Order) => o.id);
    // Between the two requests: orders on page 1 move past the boundary, new ones land before it, one
    // after it is deleted, and an unrelated one is updated in place.
    await db.sql.query('UPDATE orders SET total_cents = 0 WHERE id = ANY($1)', [shown.slice(0, 5)]);
    await db.sql.query("INSERT INTO orders (customer_name, product_name, total_cents) VALUES ('Rich', 'Gold', 999999999)");
    const { rows: untouched } = await db.sql.query<{ id: string }>(
      'SELECT id FROM orders WHERE NOT (id = ANY($1)) AND customer_name <> $2 ORDER BY total_cents DESC, id DESC',
      [shown.slice(0, 5), 'Rich'],
    );
    const rest = await walk(link);
    const seen = [...shown.slice(5), ...rest.orders.map((o) => o.id)];
    // Every order that did not move appears exactly once, in order; the moved ones appear where they now belong.
    const untouchedIds = untouched.map((r) => Number(r.id));
    expect(seen.filter((id) => untouchedIds.includes(id))).toEqual(untouchedIds);
    expect(new Set(seen).size).toBe(seen.length);
    expect(rest.pages[0]?.offset).toBe(30 - 5 + 1);
    await db.sql.query("DELETE FROM orders WHERE customer_name = 'Rich'");
  });

  it.each([
    ['garbage', '!!!'],
    ['not JSON', Buffer.from('hello').toString('base64url')],
    ['another shape', Buffer.from('{"a":1}').toString('base64url')],
    ['another version', Buffer.from('[2,"id","desc",1,1]').toString('base64url')],
    ['another sort', Buffer.from('[1,"customer_name","asc","a",1]').toString('base64url')],
    ['a string for a number', Buffer.from('[1,"id","desc","1; DROP TABLE orders",1]').toString('base64url')],
    ['an unsafe integer', Buffer.from('[1,"id","desc",1e300,1]').toString('base64url')],
    ['a negative id', Buffer.from('[1,"id","desc",5,-1]').toString('base64url')],
    ['too long', 'A'.repeat(1300)],
  ])('answers 400 problem+json for a page token that is %s', async (_what, token) => {
    const res = await get(`/orders?page=${encodeURIComponent(token)}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain('query.page');
  });

  it.each([
    ['a date that does not exist', 'updated_at', 'desc', '2026-02-31T00:00:00.000000Z'],
    ['year zero', 'created_at', 'asc', '0000-01-01T00:00:00.000000Z'],
    ['a NUL in a name', 'customer_name', 'asc', 'a\u0000b'],
    ['an unknown status', 'status', 'asc', 'lost'],
  ])('answers 400 (not 500) for a token with %s', async (_what, sort, dir, value) => {
    const token = Buffer.from(JSON.stringify([1, sort, dir, value, 1])).toString('base64url');
    const res = await get(`/orders?sort=${sort}&dir=${dir}&page=${token}`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation-failed');
  });

  it('refuses before= with another sort, and an unknown sort', async () => {
    expect((await get('/orders?sort=total_cents&before=5')).status).toBe(400);
    const bad = await get('/orders?sort=notes');
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).toContain('query.sort');
  });

  it('gives the view total in /orders/stats from the same snapshot as its cursor', async () => {
    const all = await get('/orders/stats');
    expect(all.body.view_orders).toBe(all.body.total_orders);
    const view = await get('/orders/stats?status=shipped&q=lamp');
    const { rows } = await db.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM orders WHERE status = 'shipped' AND lower(product_name) LIKE '%lamp%'",
    );
    expect(view.body.view_orders).toBe(rows[0]?.n);
    expect(view.body.total_orders).toBe(130);
  });
});

/** A minimal RFC 4180 reader, to check what a spreadsheet would read. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  // A cell is quoted ("" inside stands for ") or runs to the next comma or CRLF.
  const cell = /"((?:[^"]|"")*)"|([^,\r\n"]*)/y;
  let row: string[] = [];
  for (let i = 0; i < text.length; ) {
    cell.lastIndex = i;
    const m = cell.exec(text) as RegExpExecArray;
    row.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : (m[2] as string));
    i = cell.lastIndex;
    if (text[i] === ',') i++;
    else {
      rows.push(row);
      row = [];
      i += 2;
    }
  }
  return rows;
}

describe('GET /orders.csv', () => {
  it('exports the view, escaped, with formulas defused, for a viewer', async () => {
    const { rows } = await db.sql.query<{ id: string }>(
      `INSERT INTO orders (customer_name, product_name, notes, status) VALUES
         ('=HYPERLINK("http://evil","x")', '+cmd', E'line one\\nline "two", done', 'delivered'),
         ('@SUM(A1)', '-2+3', 'ok', 'delivered') RETURNING id`,
    );
    const res = await get('/orders.csv?status=delivered&sort=id&dir=asc', viewer);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv; charset=utf-8/);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-.*\.csv"$/);
    expect(res.headers.get('x-change-cursor')).toMatch(/^\d+:\d+:/);
    const table = parseCsv(res.text);
    expect(table[0]).toEqual([
      'id',
      'customer_name',
      'product_name',
      'quantity',
      'total_cents',
      'status',
      'notes',
      'created_at',
      'updated_at',
      'version',
    ]);
    const { rows: n } = await db.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE status = 'delivered'");
    expect(table.length - 1).toBe(n[0]?.n);
    expect(table.slice(1).every((r) => r[5] === 'delivered')).toBe(true);
    const evil = table.find((r) => r[0] === rows[0]?.id) as string[];
    expect(evil.slice(1, 3)).toEqual([`'=HYPERLINK("http://evil","x")`, "'+cmd"]);
    expect(evil[6]).toBe('line one\nline "two", done');
    const at = table.find((r) => r[0] === rows[1]?.id) as string[];
    expect(at.slice(1, 3)).toEqual(["'@SUM(A1)", "'-2+3"]);
    await db.sql.query('DELETE FROM orders WHERE id = ANY($1)', [rows.map((r) => r.id)]);
  });

  it('sees only a scoped token’s scope, needs a token, and refuses bad parameters', async () => {
    const table = parseCsv((await get('/orders.csv', scoped)).text);
    expect(table.length - 1).toBe(26);
    expect(table.slice(1).every((r) => r[5] === 'processing')).toBe(true);
    expect((await http(svc.url, 'GET', '/orders.csv')).status).toBe(401);
    const bad = await get('/orders.csv?status=lost');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('is one snapshot: writes made while the file is being read are not in it', async () => {
    await db.sql.query(
      "INSERT INTO orders (customer_name, product_name, notes) SELECT 'Bulk ' || g, 'Item', repeat('x', 4000) FROM generate_series(1, 2000) g",
    );
    const res = await fetch(`${svc.url}/orders.csv?q=bulk`, { headers: as(admin) });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // 8 MB: far more than the socket buffers hold, so the server is still reading rows from its cursor.
    await db.sql.query("UPDATE orders SET notes = 'changed' WHERE customer_name LIKE 'Bulk %'");
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Bulk late', 'Item')");
    const chunks = [Buffer.from(first.value as Uint8Array)];
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(Buffer.from(r.value));
    // No quotes or commas in these rows: a split reads them (the character-by-character reader is slow on 8 MB).
    const table = Buffer.concat(chunks)
      .toString('utf8')
      .split('\r\n')
      .slice(0, -1)
      .map((line) => line.split(','));
    expect(table.length - 1).toBe(2000);
    expect(table.slice(1).filter((r) => r[6] !== 'x'.repeat(4000))).toEqual([]);
    await db.sql.query("DELETE FROM orders WHERE customer_name LIKE 'Bulk %'");
  });
});
