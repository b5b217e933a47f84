import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';
import { openSocket } from './helpers/upgrade.js';

let db: TestDatabase;
let svc: RunningService;
const tokens: Record<'viewer' | 'operator' | 'admin' | 'revoked', string> = {
  viewer: generateToken(),
  operator: generateToken(),
  admin: generateToken(),
  revoked: generateToken(),
};

async function countOrders(): Promise<number> {
  return (await db.sql.query('SELECT count(*)::int AS n FROM orders')).rows[0].n;
}

beforeAll(async () => {
  db = await createTestDatabase();
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3)', [
      `test ${role}`,
      role,
      hashToken(tokens[role]),
    ]);
  }
  await db.sql.query("INSERT INTO api_tokens (name, role, token_hash, revoked_at) VALUES ('gone', 'admin', $1, now())", [
    hashToken(tokens.revoked),
  ]);
  svc = await startService(db.url, { AUTH_CACHE_MS: '0' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

const as = (who: keyof typeof tokens | 'nobody' | 'garbage'): Record<string, string> =>
  who === 'nobody' ? {} : { authorization: `Bearer ${who === 'garbage' ? 'ord_not-a-real-token-at-all' : tokens[who]}` };

describe('every route × every role', () => {
  const matrix: { method: string; path: string; body?: unknown; need: 'viewer' | 'operator' | 'admin' }[] = [
    { method: 'GET', path: '/orders', need: 'viewer' },
    { method: 'GET', path: '/orders/stats', need: 'viewer' },
    { method: 'GET', path: '/orders/1', need: 'viewer' },
    { method: 'POST', path: '/orders', body: { customer_name: 'Matrix', product_name: 'Role' }, need: 'operator' },
    { method: 'PATCH', path: '/orders/1', body: { notes: 'patched' }, need: 'operator' },
    { method: 'PUT', path: '/orders/1', body: { notes: 'put' }, need: 'operator' },
    { method: 'GET', path: '/metrics', need: 'admin' },
    { method: 'DELETE', path: '/orders/1', need: 'admin' },
  ];
  const rank = { nobody: -2, garbage: -1, revoked: -1, viewer: 0, operator: 1, admin: 2 } as const;

  it('lets the allowed through and answers 401/403 to the others, changing nothing', async () => {
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Target', 'Order')");
    for (const route of matrix) {
      for (const who of ['nobody', 'garbage', 'revoked', 'viewer', 'operator', 'admin'] as const) {
        const before = (await db.sql.query('SELECT count(*)::int AS n, max(version) AS v FROM orders')).rows[0];
        const res = await http<any>(svc.url, route.method, route.path, route.body, as(who));
        const label = `${route.method} ${route.path} as ${who}`;
        if (rank[who] < 0) {
          expect(res.status, label).toBe(401);
          expect(res.headers.get('www-authenticate'), label).toMatch(/^Bearer/);
          expect(res.body.code, label).toBe('unauthorized');
        } else if (rank[who] < rank[route.need]) {
          expect(res.status, label).toBe(403);
          expect(res.body).toMatchObject({ code: 'forbidden', required: route.need, role: who });
        } else {
          expect(res.status, label).toBeLessThan(300);
          if (route.method === 'DELETE') await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Target', 'Again')");
          continue;
        }
        expect(res.headers.get('content-type'), label).toMatch(/^application\/problem\+json/);
        const after = (await db.sql.query('SELECT count(*)::int AS n, max(version) AS v FROM orders')).rows[0];
        expect(after, `${label} changed data`).toEqual(before);
      }
    }
  });

  it('tells a caller its role at GET /me', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const me = await http<any>(svc.url, 'GET', '/me', undefined, as(role));
      expect(me.body).toEqual({ name: `test ${role}`, role, authentication: true, currency: 'USD' });
    }
    expect((await http(svc.url, 'GET', '/me')).status).toBe(401);
  });

  it('answers path traversal with 404 and never a file', async () => {
    for (const p of [
      '/..%2f..%2fetc/passwd',
      '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '/assets/..%2f..%2f..%2fetc/passwd',
      '/docs/..%2f..%2fetc/passwd',
      '/..\\..\\etc\\passwd',
    ]) {
      const res = await fetch(svc.url + p);
      expect(res.status, p).toBe(404);
      expect(await res.text()).not.toMatch(/root:/);
    }
  });

  it('keeps health, readiness and the dashboard public', async () => {
    expect((await http(svc.url, 'GET', '/healthz')).status).toBe(200);
    expect([200, 503]).toContain((await http(svc.url, 'GET', '/readyz')).status);
    expect((await http(svc.url, 'GET', '/docs/openapi.json')).status).toBe(200);
  });

  it('stops accepting a token once it is revoked', async () => {
    const t = generateToken();
    const { rows } = await db.sql.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('temp', 'viewer', $1) RETURNING id", [
      hashToken(t),
    ]);
    expect((await http(svc.url, 'GET', '/orders', undefined, { authorization: `Bearer ${t}` })).status).toBe(200);
    await db.sql.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [rows[0].id]);
    expect((await http(svc.url, 'GET', '/orders', undefined, { authorization: `Bearer ${t}` })).status).toBe(401);
  });
});

describe('WebSocket upgrade', () => {
  const open = (headers: Record<string, string>, protocols?: string[]) =>
    new Promise<{ status: number; protocol?: string }>((resolve) => {
      const ws = new WebSocket(svc.wsUrl, protocols, { headers });
      ws.once('open', () => {
        resolve({ status: 101, protocol: ws.protocol });
        ws.close();
      });
      ws.once('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0 });
        res.resume();
        ws.terminate();
      });
      ws.once('error', () => resolve({ status: -1 }));
    });

  it('refuses a missing or bad token with no 101', async () => {
    expect((await open({})).status).toBe(401);
    expect((await open({ authorization: 'Bearer ord_nope-nope-nope' })).status).toBe(401);
    expect((await open(as('revoked'))).status).toBe(401);
  });

  it('accepts a token in the Authorization header or as a bearer subprotocol', async () => {
    expect((await open(as('viewer'))).status).toBe(101);
    const viaProtocol = await open({}, ['orders.v1', `bearer.${tokens.viewer}`]);
    expect(viaProtocol).toEqual({ status: 101, protocol: 'orders.v1' });
  });

  it('refuses a foreign Origin (cross-site WebSocket hijacking) but allows the same origin', async () => {
    const auth = as('admin');
    expect((await open({ ...auth, origin: 'https://evil.example' })).status).toBe(403);
    expect((await open({ ...auth, origin: svc.url })).status).toBe(101);
  });
});

describe('WebSocket limits and revocation', () => {
  const connect = (token: string, url = svc.wsUrl) => openSocket(url, { authorization: `Bearer ${token}` });

  it('caps the sockets of one credential', async () => {
    const capped = await startService(db.url, { WS_MAX_CONNECTIONS_PER_TOKEN: '2', AUTH_CACHE_MS: '0' });
    const open: WebSocket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const r = await connect(tokens.viewer, capped.wsUrl);
        expect(r.status).toBe(101);
        open.push(r.ws as WebSocket);
      }
      expect((await connect(tokens.viewer, capped.wsUrl)).status).toBe(429);
      const other = await connect(tokens.operator, capped.wsUrl);
      expect(other.status).toBe(101);
      open.push(other.ws as WebSocket);
      const first = open.shift() as WebSocket;
      await new Promise<void>((resolve) => {
        first.once('close', () => resolve());
        first.close();
      });
      const deadline = Date.now() + 5000;
      let again = await connect(tokens.viewer, capped.wsUrl);
      while (again.status !== 101 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        again = await connect(tokens.viewer, capped.wsUrl);
      }
      expect(again.status).toBe(101);
      open.push(again.ws as WebSocket);
    } finally {
      for (const ws of open) ws.terminate();
      await capped.close();
    }
  });

  it('closes the sockets of a revoked credential with 1008', async () => {
    const t = generateToken();
    const { rows } = await db.sql.query(
      "INSERT INTO api_tokens (name, role, token_hash) VALUES ('soon revoked', 'viewer', $1) RETURNING id",
      [hashToken(t)],
    );
    const r = await connect(t);
    expect(r.status).toBe(101);
    const ws = r.ws as WebSocket;
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await db.sql.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [rows[0].id]);
    expect(await closed).toBe(1008);
  });
});

describe('limits and headers', () => {
  it('sends security headers and a strict CSP', async () => {
    const res = await http(svc.url, 'GET', '/orders', undefined, as('viewer'));
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe-inline/);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers 429 with Retry-After past the per-address and per-token limits', async () => {
    const limited = await startService(db.url, { RATE_LIMIT_PER_MINUTE: '5', RATE_LIMIT_PER_TOKEN_PER_MINUTE: '0' });
    try {
      const statuses: number[] = [];
      let last: any;
      for (let i = 0; i < 7; i++) {
        last = await http<any>(limited.url, 'GET', '/orders', undefined, as('viewer'));
        statuses.push(last.status);
      }
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(last.status).toBe(429);
      expect(last.body.code).toBe('too-many-requests');
      expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await limited.close();
    }
    const perToken = await startService(db.url, { RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_PER_TOKEN_PER_MINUTE: '3' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++)
        statuses.push((await http(perToken.url, 'POST', '/orders', { customer_name: 'r', product_name: 'l' }, as('operator'))).status);
      expect(statuses).toEqual([201, 201, 201, 429]);
      expect(await countOrders()).toBeGreaterThanOrEqual(3);
    } finally {
      await perToken.close();
    }
  });
});
