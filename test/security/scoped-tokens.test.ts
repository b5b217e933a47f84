import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateToken, hashToken } from '../../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { settled, ViewClient } from '../helpers/view-client.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Scoped tokens (`npm run token -- create --role viewer --scope status=processing`): every route sees
 * only the scope. Lists and the stream intersect the asked filter with it, reads outside it are 404,
 * totals count only it, and a write that would leave an order outside an operator's scope is 403.
 */
let db: TestDatabase;
let svc: RunningService;
const tokens = {
  viewer: generateToken(),
  operator: generateToken(),
  admin: generateToken(),
  full: generateToken(),
};
const as = (who: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[who]}` });
let inScope: number;
let outOfScope: number;

beforeAll(async () => {
  db = await createTestDatabase();
  const add = (name: string, role: string, token: string, scope: string | null) =>
    db.sql.query('INSERT INTO api_tokens (name, role, token_hash, scope) VALUES ($1, $2, $3, $4)', [name, role, hashToken(token), scope]);
  await add('packing viewer', 'viewer', tokens.viewer, 'status=processing');
  await add('packing station', 'operator', tokens.operator, 'status=pending,processing');
  await add('acme admin', 'admin', tokens.admin, 'q=acme');
  await add('everything', 'admin', tokens.full, null);
  const { rows } = await db.sql.query<{ id: string }>(
    `INSERT INTO orders (customer_name, product_name, status, total_cents) VALUES
       ('Acme', 'Box', 'processing', 1000), ('Bob', 'Crate', 'shipped', 500), ('Acme', 'Lid', 'pending', 250) RETURNING id`,
  );
  [inScope, outOfScope] = rows.map((r) => Number(r.id)) as [number, number];
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

const ids = (body: { id: number }[]) => body.map((o) => o.id).sort((a, b) => a - b);

describe('a scoped token', () => {
  it('lists only its scope, intersected with the filter it asks for', async () => {
    expect(ids((await http(svc.url, 'GET', '/orders', undefined, as('viewer'))).body)).toEqual([inScope]);
    expect((await http(svc.url, 'GET', '/orders?status=shipped', undefined, as('viewer'))).body).toEqual([]);
    expect((await http(svc.url, 'GET', '/orders?q=bob', undefined, as('viewer'))).body).toEqual([]);
    expect(ids((await http(svc.url, 'GET', '/orders?q=box', undefined, as('viewer'))).body)).toEqual([inScope]);
    expect((await http(svc.url, 'GET', '/orders', undefined, as('admin'))).body).toHaveLength(2);
    expect((await http(svc.url, 'GET', '/orders', undefined, as('full'))).body).toHaveLength(3);
  });

  it('cannot read an order outside its scope (404, as if it did not exist)', async () => {
    expect((await http(svc.url, 'GET', `/orders/${inScope}`, undefined, as('viewer'))).status).toBe(200);
    const out = await http(svc.url, 'GET', `/orders/${outOfScope}`, undefined, as('viewer'));
    expect(out.status).toBe(404);
    expect(out.headers.get('content-type')).toContain('application/problem+json');
  });

  it('gets the totals of its scope, with their cursor', async () => {
    const res = await http(svc.url, 'GET', '/orders/stats', undefined, as('viewer'));
    expect(res.headers.get('x-change-cursor')).toBeTruthy();
    expect(res.body.total_orders).toBe(1);
    expect(res.body.by_status).toEqual({ processing: { count: 1, total_cents: 1000 } });
    expect((await http(svc.url, 'GET', '/orders/stats', undefined, as('full'))).body.total_orders).toBe(3);
  });

  it('streams only its scope, and totals of its scope, whatever filter it asks for', async () => {
    const c = new ViewClient(svc.url, svc.wsUrl, '', as('viewer'));
    const wide = new ViewClient(svc.url, svc.wsUrl, 'status=shipped,processing', as('viewer'));
    for (const x of [c, wide]) {
      await x.load();
      await x.connect();
    }
    try {
      const { rows } = await db.sql.query<{ id: string }>(
        "INSERT INTO orders (customer_name, product_name, status, total_cents) VALUES ('Zed', 'Pen', 'processing', 70), ('Zed', 'Pin', 'shipped', 30) RETURNING id",
      );
      await db.sql.query("UPDATE orders SET status = 'shipped' WHERE id = $1", [rows[0]?.id]);
      await settled(c);
      await settled(wide);
      for (const x of [c, wide]) {
        for (const m of x.messages)
          for (const ch of m.changes) expect(ch.old?.status === 'processing' || ch.order.status === 'processing').toBe(true);
        expect(x.received.length).toBe(2);
        expect([...x.totals.byStatus.keys()]).toEqual(['processing']);
      }
    } finally {
      await c.disconnect();
      await wide.disconnect();
    }
  });

  it('as an operator, cannot create, move or touch orders outside its scope (403 / 404)', async () => {
    const created = await http(
      svc.url,
      'POST',
      '/orders',
      { customer_name: 'Eve', product_name: 'Cup', status: 'shipped' },
      as('operator'),
    );
    expect(created.status).toBe(403);
    expect(created.body.code).toBe('outside-scope');
    expect(created.headers.get('content-type')).toContain('application/problem+json');
    const ok = await http(svc.url, 'POST', '/orders', { customer_name: 'Eve', product_name: 'Cup' }, as('operator'));
    expect(ok.status).toBe(201);
    const moved = await http(svc.url, 'PATCH', `/orders/${ok.body.id}`, { status: 'shipped' }, as('operator'));
    expect(moved.status).toBe(403);
    expect(moved.body.code).toBe('outside-scope');
    expect((await db.sql.query('SELECT status, version FROM orders WHERE id = $1', [ok.body.id])).rows[0]).toEqual({
      status: 'pending',
      version: 1,
    });
    expect((await http(svc.url, 'PATCH', `/orders/${ok.body.id}`, { status: 'processing' }, as('operator'))).status).toBe(200);
    const foreign = await http(svc.url, 'PUT', `/orders/${outOfScope}`, { notes: 'x' }, as('operator'));
    expect(foreign.status).toBe(404);
  });

  it('as an admin, deletes only inside its scope', async () => {
    expect((await http(svc.url, 'DELETE', `/orders/${outOfScope}`, undefined, as('admin'))).status).toBe(404);
    const renamed = await http(svc.url, 'PATCH', `/orders/${inScope}`, { customer_name: 'Other' }, as('admin'));
    expect(renamed.status).toBe(403);
    expect((await http(svc.url, 'DELETE', `/orders/${inScope}`, undefined, as('admin'))).status).toBe(204);
  });

  it('accepts a stream filter outside its scope as an empty view, not an error', async () => {
    const ws = new WebSocket(`${svc.wsUrl}?status=shipped`, ['orders.v1', `bearer.${tokens.viewer}`]);
    const hello = await new Promise<{ type: string }>((resolve, reject) => {
      ws.on('message', (d) => resolve(JSON.parse(d.toString())));
      ws.on('error', reject);
    });
    expect(hello.type).toBe('hello');
    await waitFor(() => svc.service.hub.listClients().length >= 1);
    ws.close();
  });
});
