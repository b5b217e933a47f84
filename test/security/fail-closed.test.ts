import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { generateToken, hashToken } from '../../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { openSocket } from '../helpers/upgrade.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Authentication fails closed (issue 10, findings 1 and 2): revoking the last token never switches it
 * off, and with it off only requests naming this machine are served (DNS rebinding).
 */
let db: TestDatabase;
const running: RunningService[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  await db.sql.query('DELETE FROM api_tokens');
});

afterAll(async () => {
  await db?.drop();
});

async function start(settings: Record<string, string> = {}): Promise<RunningService> {
  const s = await startService(db.url, { AUTH_CACHE_MS: '0', ...settings });
  running.push(s);
  return s;
}

async function addToken(role: string, name = `t ${role}`): Promise<{ id: string; token: string }> {
  const token = generateToken();
  const { rows } = await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3) RETURNING id', [
    name,
    role,
    hashToken(token),
  ]);
  return { id: rows[0].id, token };
}

const closeCode = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

/** A request with a Host header of our choosing (fetch does not let a caller set Host). */
function withHost(
  port: number,
  host: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; type: string; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { host, ...(payload ? { 'content-type': 'application/json', origin: `http://${host}` } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const countOrders = async () => (await db.sql.query('SELECT count(*)::int AS n FROM orders')).rows[0].n as number;

describe('revoking every token', () => {
  it('locks everybody out of a network-bound instance and closes their sockets with 1008', async () => {
    const admin = await addToken('admin');
    // HOST is what decides "network-bound"; the test still listens on loopback.
    const svc = await start({ HOST: '0.0.0.0' });
    const auth = { authorization: `Bearer ${admin.token}` };
    expect((await http(svc.url, 'POST', '/orders', { customer_name: 'Before', product_name: 'Revoke' }, auth)).status).toBe(201);
    const socket = await openSocket(svc.wsUrl, auth);
    expect(socket.status).toBe(101);
    const closed = closeCode(socket.ws as WebSocket);

    await db.sql.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [admin.id]);

    const before = await countOrders();
    for (const headers of [{}, auth]) {
      const created = await http<any>(svc.url, 'POST', '/orders', { customer_name: 'After', product_name: 'Revoke' }, headers);
      expect(created.status).toBe(401);
      expect(created.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await http(svc.url, 'GET', '/me', undefined, headers)).status).toBe(401);
      expect((await openSocket(svc.wsUrl, headers)).status).toBe(401);
    }
    expect(await countOrders()).toBe(before);
    expect(await closed).toBe(1008);
  });

  it('keeps authentication on for a loopback instance once a token has existed', async () => {
    const svc = await start();
    expect((await http<any>(svc.url, 'GET', '/me')).body).toMatchObject({ authentication: false, role: 'admin' });
    const local = await openSocket(svc.wsUrl);
    expect(local.status).toBe(101);
    const localClosed = closeCode(local.ws as WebSocket);

    const viewer = await addToken('viewer');
    // The socket opened while authentication was off has no credential: it is closed once it is on.
    expect(await localClosed).toBe(1008);
    expect((await http(svc.url, 'GET', '/orders')).status).toBe(401);
    expect((await http(svc.url, 'GET', '/orders', undefined, { authorization: `Bearer ${viewer.token}` })).status).toBe(200);

    await db.sql.query('UPDATE api_tokens SET revoked_at = now()');
    const me = await http<any>(svc.url, 'GET', '/me');
    expect(me.status).toBe(401);
    expect((await http(svc.url, 'POST', '/orders', { customer_name: 'x', product_name: 'y' })).status).toBe(401);
    // A fresh instance on the same database starts with authentication on as well.
    const fresh = await start();
    expect((await http(fresh.url, 'GET', '/me')).status).toBe(401);
  });

  it('with AUTH=required, an instance with no token at all lets nobody in', async () => {
    const svc = await start({ AUTH: 'required' });
    const res = await http<any>(svc.url, 'GET', '/orders');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthorized');
    expect((await openSocket(svc.wsUrl)).status).toBe(401);
  });

  it('refuses an expired token and closes its sockets', async () => {
    const svc = await start();
    const t = await addToken('viewer');
    await addToken('admin');
    const auth = { authorization: `Bearer ${t.token}` };
    const socket = await openSocket(svc.wsUrl, auth);
    expect(socket.status).toBe(101);
    const closed = closeCode(socket.ws as WebSocket);
    await db.sql.query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [t.id]);
    expect((await http(svc.url, 'GET', '/orders', undefined, auth)).status).toBe(401);
    expect(await closed).toBe(1008);
  });
});

describe('DNS rebinding with authentication off', () => {
  const hostile = 'rebind.attacker.example';

  it('answers 421 to a foreign Host on every route and the WebSocket, changing nothing', async () => {
    const svc = await start();
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Rebind', 'Target')");
    const before = (await db.sql.query('SELECT count(*)::int AS n, max(version) AS v FROM orders')).rows[0];
    const host = `${hostile}:${svc.port}`;
    for (const [method, path, body] of [
      ['POST', '/orders', { customer_name: 'Evil', product_name: 'Page' }],
      ['DELETE', '/orders/1', undefined],
      ['PATCH', '/orders/1', { notes: 'owned' }],
      ['GET', '/orders', undefined],
      ['GET', '/metrics', undefined],
      ['GET', '/me', undefined],
      ['GET', '/readyz', undefined],
      ['GET', '/', undefined],
    ] as const) {
      const res = await withHost(svc.port, host, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(421);
      expect(res.type).toMatch(/^application\/problem\+json/);
      expect(res.body.code).toBe('misdirected-request');
    }
    for (const h of ['example.com', 'localhost.attacker.example', '127.0.0.1.nip.io', 'evil@127.0.0.1']) {
      expect([400, 421], JSON.stringify(h)).toContain((await withHost(svc.port, h, 'GET', '/orders')).status);
    }
    const ws = await openSocket(`ws://127.0.0.1:${svc.port}/ws`, { host, origin: `http://${host}` });
    expect(ws.status).toBe(421);
    const after = (await db.sql.query('SELECT count(*)::int AS n, max(version) AS v FROM orders')).rows[0];
    expect(after).toEqual(before);
  });

  it('serves loopback names and ALLOWED_HOSTS', async () => {
    const svc = await start({ ALLOWED_HOSTS: 'orders.internal' });
    for (const host of [
      `localhost:${svc.port}`,
      `127.0.0.1:${svc.port}`,
      `[::1]:${svc.port}`,
      'LOCALHOST',
      `orders.internal:${svc.port}`,
    ]) {
      expect((await withHost(svc.port, host, 'GET', '/orders')).status, host).toBe(200);
    }
    expect((await withHost(svc.port, `${hostile}:${svc.port}`, 'GET', '/orders')).status).toBe(421);
  });

  it('lets any Host through once authentication is on (a token is what counts then)', async () => {
    const admin = await addToken('admin');
    const svc = await start();
    await waitFor(async () => (await http(svc.url, 'GET', '/orders')).status === 401);
    const res = await new Promise<number>((resolve, reject) => {
      request(
        {
          host: '127.0.0.1',
          port: svc.port,
          path: '/orders',
          headers: { host: 'orders.example.com', authorization: `Bearer ${admin.token}` },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      )
        .on('error', reject)
        .end();
    });
    expect(res).toBe(200);
  });
});
