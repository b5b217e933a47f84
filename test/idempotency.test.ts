import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

/**
 * Idempotency keys belong to the credential that used them, and to the method and path they were used
 * on: another token's identical key is a different key (no replay of someone else's response, no 422
 * revealing that it exists). PATCH, PUT and DELETE honour the key with the same semantics as POST.
 */
let db: TestDatabase;
let svc: RunningService;
const tokens = { operator: generateToken(), colleague: generateToken(), admin: generateToken() };
type Who = keyof typeof tokens;

const as = (who: Who, key?: string): Record<string, string> => ({
  authorization: `Bearer ${tokens[who]}`,
  ...(key ? { 'idempotency-key': key } : {}),
});
const api = <T = any>(who: Who, method: string, path: string, body?: unknown, key?: string) =>
  http<T>(svc.url, method, path, body, as(who, key));

async function orderRows(): Promise<{ id: string; version: number; notes: string; quantity: number }[]> {
  return (await db.sql.query('SELECT id, version, notes, quantity FROM orders ORDER BY id')).rows;
}

function expectProblem(res: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code });
}

beforeAll(async () => {
  db = await createTestDatabase();
  for (const [name, role] of [
    ['operator', 'operator'],
    ['colleague', 'operator'],
    ['admin', 'admin'],
  ] as const) {
    await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3)', [name, role, hashToken(tokens[name])]);
  }
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.sql.query("SELECT set_config('orders.allow_truncate', 'on', true); TRUNCATE orders, idempotency_keys RESTART IDENTITY");
});

describe('keys are scoped per credential', () => {
  const body = { customer_name: 'Grace', product_name: 'Compiler' };

  it("never replays another token's response for the same key and body", async () => {
    const mine = await api('operator', 'POST', '/orders', body, 'shared-key');
    const theirs = await api('admin', 'POST', '/orders', body, 'shared-key');
    expect(mine.status).toBe(201);
    expect(theirs.status).toBe(201);
    expect(theirs.headers.get('idempotent-replayed')).toBeNull();
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect((await orderRows()).length).toBe(2);
    // Each token's own repeat still replays its own order.
    const mineAgain = await api('operator', 'POST', '/orders', body, 'shared-key');
    const theirsAgain = await api('admin', 'POST', '/orders', body, 'shared-key');
    expect(mineAgain.headers.get('idempotent-replayed')).toBe('true');
    expect(mineAgain.body).toEqual(mine.body);
    expect(theirsAgain.body).toEqual(theirs.body);
    expect((await orderRows()).length).toBe(2);
  });

  it('does not reveal that another token used the key (no 422 for a different body)', async () => {
    await api('operator', 'POST', '/orders', body, 'secret-key');
    const other = await api('colleague', 'POST', '/orders', { ...body, quantity: 5 }, 'secret-key');
    expect(other.status).toBe(201);
    expect(other.body.quantity).toBe(5);
    // The key's owner still gets 422 for a different body under it.
    expectProblem(await api('operator', 'POST', '/orders', { ...body, quantity: 5 }, 'secret-key'), 422, 'idempotency-key-reused');
    expect((await orderRows()).length).toBe(2);
  });

  it('scopes a key to its method and path', async () => {
    const a = await api('operator', 'POST', '/orders', body, 'k-path');
    const b = await api('operator', 'POST', '/orders', body, 'k-path-2');
    const patchA = await api('operator', 'PATCH', `/orders/${a.body.id}`, { notes: 'x' }, 'k-path');
    const patchB = await api('operator', 'PATCH', `/orders/${b.body.id}`, { notes: 'x' }, 'k-path');
    const putA = await api('operator', 'PUT', `/orders/${a.body.id}`, { notes: 'x' }, 'k-path');
    expect([patchA.status, patchB.status, putA.status]).toEqual([200, 200, 200]);
    for (const r of [patchA, patchB, putA]) expect(r.headers.get('idempotent-replayed')).toBeNull();
    expect((await orderRows()).map((o) => o.version)).toEqual([3, 2]);
  });
});

describe('Idempotency-Key on PATCH, PUT and DELETE', () => {
  async function createOrder(): Promise<number> {
    const res = await api('operator', 'POST', '/orders', { customer_name: 'Ada', product_name: 'Engine' });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  for (const method of ['PATCH', 'PUT'] as const) {
    it(`${method}: the same request twice with one key moves the version once and replays the response`, async () => {
      const id = await createOrder();
      const first = await api('operator', method, `/orders/${id}`, { quantity: 4 }, `k-${method}`);
      const second = await api('operator', method, `/orders/${id}`, { quantity: 4 }, `k-${method}`);
      expect(first.status).toBe(200);
      expect(first.body.version).toBe(2);
      expect(second.status).toBe(200);
      expect(second.text).toBe(first.text);
      expect(second.headers.get('etag')).toBe(first.headers.get('etag'));
      expect(second.headers.get('idempotent-replayed')).toBe('true');
      expect(await orderRows()).toEqual([{ id: String(id), version: 2, notes: '', quantity: 4 }]);
    });
  }

  it('PATCH: the same key with a different body is 422 and changes nothing', async () => {
    const id = await createOrder();
    await api('operator', 'PATCH', `/orders/${id}`, { notes: 'one' }, 'k-diff');
    const before = await orderRows();
    expectProblem(await api('operator', 'PATCH', `/orders/${id}`, { notes: 'two' }, 'k-diff'), 422, 'idempotency-key-reused');
    expect(await orderRows()).toEqual(before);
  });

  it('PATCH: the reason is part of the request: the same key with another reason is 422, with the same one a replay', async () => {
    // The reason is kept in the order's history: a replay under another reason would record a reason
    // that was never applied, so it is a different request.
    const id = await createOrder();
    const first = await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: 'customer called' }, 'k-why');
    expect(first.status).toBe(200);
    const before = await orderRows();
    expectProblem(
      await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: 'out of stock' }, 'k-why'),
      422,
      'idempotency-key-reused',
    );
    expectProblem(await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled' }, 'k-why'), 422, 'idempotency-key-reused');
    // Only the reason's surrounding blanks are not part of it, as in the history.
    const again = await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: '  customer called ' }, 'k-why');
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await orderRows()).toEqual(before);
  });

  it('PATCH: a key stored before the reason counted (an earlier release) still replays the same request after an upgrade', async () => {
    const id = await createOrder();
    const first = await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: 'late' }, 'k-upgrade');
    expect(first.status).toBe(200);
    // What the earlier release stored for that request: the body without its reason, and If-Match.
    const earlier = createHash('sha256')
      .update(JSON.stringify({ body: { status: 'cancelled' }, precondition: null }))
      .digest('hex');
    expect((await db.sql.query("UPDATE idempotency_keys SET request_hash = $1 WHERE key = 'k-upgrade'", [earlier])).rowCount).toBe(1);
    const before = await orderRows();
    const retry = await api('operator', 'PATCH', `/orders/${id}`, { status: 'cancelled', reason: 'late' }, 'k-upgrade');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(await orderRows()).toEqual(before);
  });

  it('PATCH: a refused request stores nothing, so the key stays free for a corrected retry', async () => {
    const id = await createOrder();
    expectProblem(await api('operator', 'PATCH', `/orders/${id}`, { status: 'delivered' }, 'k-fix'), 409, 'invalid-transition');
    const retry = await api('operator', 'PATCH', `/orders/${id}`, { status: 'shipped' }, 'k-fix');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
  });

  it('PATCH: 409 while the first request with the key is still in flight', async () => {
    const id = await createOrder();
    // Hold the order's row lock, so the first PATCH waits inside its transaction holding the key.
    const holder: pg.PoolClient = await db.sql.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM orders WHERE id = $1 FOR UPDATE', [id]);
      const first = api('operator', 'PATCH', `/orders/${id}`, { notes: 'slow' }, 'k-inflight');
      await waitFor(
        async () =>
          (
            await db.sql.query(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> $1",
              [(await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid],
            )
          ).rows[0].n === 1,
      );
      const second = await api('operator', 'PATCH', `/orders/${id}`, { notes: 'slow' }, 'k-inflight');
      expectProblem(second, 409, 'idempotency-key-in-use');
      expect(second.headers.get('retry-after')).toBe('1');
      await holder.query('ROLLBACK');
      expect((await first).status).toBe(200);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    const replay = await api('operator', 'PATCH', `/orders/${id}`, { notes: 'slow' }, 'k-inflight');
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await orderRows())[0]?.version).toBe(2);
  });

  it('DELETE: a repeat with the key replays the 204 instead of a 404', async () => {
    const id = await createOrder();
    const first = await api('admin', 'DELETE', `/orders/${id}`, undefined, 'k-del');
    const second = await api('admin', 'DELETE', `/orders/${id}`, undefined, 'k-del');
    expect(first.status).toBe(204);
    expect(second.status).toBe(204);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await orderRows()).toEqual([]);
    // Without the key, a second delete is an honest 404.
    expectProblem(await api('admin', 'DELETE', `/orders/${id}`), 404, 'not-found');
  });

  it('keeps stored keys within the retention the feed prunes', async () => {
    const id = await createOrder();
    await api('operator', 'PATCH', `/orders/${id}`, { notes: 'kept' }, 'k-retained');
    const { rows } = await db.sql.query('SELECT principal, method, path, key FROM idempotency_keys');
    expect(rows).toEqual([{ principal: expect.stringMatching(/^db:\d+$/), method: 'PATCH', path: `/orders/${id}`, key: 'k-retained' }]);
  });
});

describe('retention', () => {
  it('forgets a key after IDEMPOTENCY_TTL_HOURS, while the service runs: a retry after that is a new request', async () => {
    const local = await startService(db.url, { AUTH_CACHE_MS: '0', IDEMPOTENCY_TTL_HOURS: '1', FEED_RETENTION_INTERVAL_MS: '1000' });
    try {
      const first = await http(local.url, 'POST', '/orders', { customer_name: 'Aged', product_name: 'Key' }, as('operator', 'k-aged'));
      expect(first.status).toBe(201);
      const fresh = await http(local.url, 'POST', '/orders', { customer_name: 'Young', product_name: 'Key' }, as('operator', 'k-young'));
      expect(fresh.status).toBe(201);
      await db.sql.query(`UPDATE idempotency_keys SET created_at = now() - interval '61 minutes' WHERE key = 'k-aged'`);
      await waitFor(async () => (await db.sql.query(`SELECT 1 FROM idempotency_keys WHERE key = 'k-aged'`)).rowCount === 0, {
        timeout: 10_000,
        message: 'the expired key was pruned',
      });
      expect((await db.sql.query(`SELECT key FROM idempotency_keys WHERE key = 'k-young'`)).rows).toEqual([{ key: 'k-young' }]);
      // The same key now makes a new order instead of replaying the old answer.
      const again = await http(local.url, 'POST', '/orders', { customer_name: 'Aged', product_name: 'Key' }, as('operator', 'k-aged'));
      expect(again.status).toBe(201);
      expect((again.body as { id: number }).id).not.toBe((first.body as { id: number }).id);
    } finally {
      await local.close();
    }
  });
});
