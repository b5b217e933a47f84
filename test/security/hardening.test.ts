import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateToken, hashToken } from '../../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/** The smaller findings of issue 10 (item 8): each fixed, each shown here. */
let db: TestDatabase;
let svc: RunningService;
const viewer = generateToken();
const admin = generateToken();

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('v', 'viewer', $1), ('a', 'admin', $2)", [
    hashToken(viewer),
    hashToken(admin),
  ]);
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

it('lets the page open WebSockets only to its own origin (CSP connect-src)', async () => {
  const csp = (await http(svc.url, 'GET', '/healthz')).headers.get('content-security-policy') ?? '';
  const connect = csp.split(';').find((d) => d.trim().startsWith('connect-src'));
  expect(connect?.trim()).toBe("connect-src 'self'");
});

it('accepts a bearer subprotocol only on a WebSocket upgrade, not on plain REST', async () => {
  const res = await http<any>(svc.url, 'GET', '/orders', undefined, { 'sec-websocket-protocol': `orders.v1, bearer.${viewer}` });
  expect(res.status).toBe(401);
  expect(res.body.code).toBe('unauthorized');
  expect((await http(svc.url, 'GET', '/orders', undefined, { authorization: `Bearer ${viewer}` })).status).toBe(200);
});

it('shows anonymous readiness probes whether each check passed, and the details only to admins', async () => {
  // Ready once the listener has connected.
  const full = await waitFor(async () => {
    const r = await http<any>(svc.url, 'GET', '/readyz', undefined, { authorization: `Bearer ${admin}` });
    return r.status === 200 ? r : undefined;
  });
  for (const headers of [{}, { authorization: `Bearer ${viewer}` }] as Record<string, string>[]) {
    const res = await http<any>(svc.url, 'GET', '/readyz', undefined, headers);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ready');
    for (const [name, check] of Object.entries<any>(res.body.checks)) expect(check, name).toEqual({ ok: true });
    expect(res.text).not.toMatch(/head|clients|last_error|reconnects/);
  }
  expect(full.body.checks.listener).toMatchObject({ ok: true, status: 'connected', reconnects: expect.any(Number) });
  expect(full.body.checks.feed).toHaveProperty('head');
  expect(full.body.checks.websocket).toHaveProperty('clients');
});

it('refuses names made only of invisible characters, on create and update, changing nothing', async () => {
  const auth = { authorization: `Bearer ${admin}` };
  const before = (await db.sql.query('SELECT count(*)::int AS n, max(version) AS v FROM orders')).rows[0];
  for (const name of ['\u200B', '\u200B\u200C\u200D\uFEFF', ' \u2060 ', '\u3164', '\u2800\u00AD']) {
    const res = await http<any>(svc.url, 'POST', '/orders', { customer_name: name, product_name: 'Ghost' }, auth);
    expect(res.status, JSON.stringify(name)).toBe(400);
    expect(res.body.errors).toEqual([{ field: 'customer_name', message: expect.stringMatching(/visible/) }]);
  }
  const created = await http<any>(svc.url, 'POST', '/orders', { customer_name: '\u200BZoë', product_name: 'Visible' }, auth);
  expect(created.status).toBe(201);
  const patched = await http<any>(svc.url, 'PATCH', `/orders/${created.body.id}`, { product_name: '\u200B' }, auth);
  expect(patched.status).toBe(400);
  expect((await db.sql.query('SELECT product_name FROM orders WHERE id = $1', [created.body.id])).rows[0].product_name).toBe('Visible');
  const after = (await db.sql.query('SELECT count(*)::int AS n FROM orders')).rows[0];
  expect(after.n).toBe(before.n + 1);
});
