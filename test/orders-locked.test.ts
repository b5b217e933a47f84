import { expect, it } from 'vitest';
import { useService } from './helpers/fixtures.js';
import { http } from './helpers/service.js';

/**
 * Another program holds an order (a transaction that updated it, or took it FOR UPDATE, and has not ended).
 * A write to that order waits for it, but not for ever: after DB_LOCK_TIMEOUT_MS it is answered 409
 * `locked` (the database is fine: not a 503), nothing is changed, and once the other transaction ends
 * the same write goes through. Found by the soak: a SQL writer that kept a transaction open for seconds
 * made a PATCH wait out DB_QUERY_TIMEOUT_MS and answer 503 "The database cannot be reached".
 */
const { db, svc } = useService({ DB_QUERY_TIMEOUT_MS: '4000', DB_LOCK_TIMEOUT_MS: '600' });

async function holding<T>(id: number, during: () => Promise<T>): Promise<T> {
  const other = await db.sql.connect();
  try {
    await other.query('BEGIN');
    await other.query("UPDATE orders SET notes = 'held by another program' WHERE id = $1", [id]);
    return await during();
  } finally {
    await other.query('ROLLBACK');
    other.release();
  }
}

async function row(id: number) {
  return (await db.sql.query('SELECT status, quantity, notes, version FROM orders WHERE id = $1', [id])).rows[0];
}

it('answers 409 locked, changing nothing, when another transaction holds the order longer than DB_LOCK_TIMEOUT_MS', async () => {
  const { id, version } = (await http(svc.url, 'POST', '/orders', { customer_name: 'Held Hannah', product_name: 'Lock' })).body;
  const before = await row(id);

  const answers = await holding(id, async () => {
    const out = [];
    for (const [method, body, headers] of [
      ['PATCH', { status: 'processing' }, {}],
      ['PATCH', { quantity: 7 }, { 'if-match': `"${version}"`, 'idempotency-key': 'locked-patch-1' }],
      ['DELETE', undefined, {}],
      ['DELETE', undefined, { 'if-match': `"${version}"` }],
    ] as const) {
      const started = performance.now();
      const res = await http(svc.url, method, `/orders/${id}`, body, headers);
      out.push({ method, ms: performance.now() - started, res });
    }
    return out;
  });
  for (const { method, ms, res } of answers) {
    expect(res.status, `${method}: ${res.text}`).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'locked', type: '/problems/locked', status: 409 });
    expect(res.body.detail).toMatch(/another transaction/i);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    // Answered after the lock wait, well before the query timeout.
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(3500);
  }
  expect(await row(id)).toEqual(before);

  // The other transaction has ended: the same requests go through (the idempotency key was not used up).
  const edited = await http(
    svc.url,
    'PATCH',
    `/orders/${id}`,
    { quantity: 7 },
    { 'if-match': `"${version}"`, 'idempotency-key': 'locked-patch-1' },
  );
  expect(edited.status, edited.text).toBe(200);
  const moved = await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'processing' });
  expect(moved.status).toBe(200);
  expect(await row(id)).toMatchObject({ status: 'processing', quantity: 7 });
  expect((await http(svc.url, 'DELETE', `/orders/${id}`)).status).toBe(204);
});

it('lets reads through while an order is held', async () => {
  const { id } = (await http(svc.url, 'POST', '/orders', { customer_name: 'Read Rita', product_name: 'Lock' })).body;
  await holding(id, async () => {
    expect((await http(svc.url, 'GET', `/orders/${id}`)).status).toBe(200);
    expect((await http(svc.url, 'GET', '/orders?q=Rita')).body).toHaveLength(1);
    expect((await http(svc.url, 'GET', '/orders/stats')).status).toBe(200);
  });
});
