import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from './helpers/feed-client.js';
import { startNginx } from './helpers/nginx.js';
import { http } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

/**
 * The production shape: two service processes on one database behind nginx, running the repository's
 * own deploy/nginx.conf. Clients spread over both; writes through either reach all; one instance is
 * killed with SIGKILL and its clients resume through nginx on the other with nothing lost.
 */
const root = path.resolve(import.meta.dirname, '..');
let db: TestDatabase;
let dir: string;
let nginx: ChildProcess | undefined;
const instances: { proc: ChildProcess; port: number; url: string }[] = [];
const clients: TestFeedClient[] = [];
let lbUrl: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function startInstance(): Promise<{ proc: ChildProcess; port: number; url: string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      PORT: String(port),
      DB_MIGRATE: 'false',
      LOG_LEVEL: 'warn',
      TRUST_PROXY: '127.0.0.1',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      try {
        return (await fetch(`${url}/readyz`)).status === 200;
      } catch {
        return false;
      }
    },
    { timeout: 30_000, message: `instance on ${port} ready` },
  );
  return { proc, port, url };
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'orders-nginx-'));
  instances.push(await startInstance(), await startInstance());
  const lbPort = await freePort();
  const [a, b] = instances as [(typeof instances)[0], (typeof instances)[0]];
  const started = await startNginx(dir, [a.port, b.port], lbPort);
  nginx = started.proc;
  lbUrl = started.url;
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  nginx?.kill('SIGTERM');
  const running = (p: ChildProcess | undefined): p is ChildProcess => !!p && p.exitCode === null && p.signalCode === null;
  for (const i of instances) if (running(i.proc)) i.proc.kill('SIGKILL');
  await Promise.all([nginx, ...instances.map((i) => i.proc)].filter(running).map((p) => new Promise((r) => p.once('exit', r))));
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('balances clients over both instances, relays writes through either, and survives killing one', { timeout: 90_000 }, async () => {
  for (let i = 0; i < 6; i++) clients.push(await openClient({ http: lbUrl, ws: `${lbUrl.replace('http', 'ws')}/ws`, name: `lb${i}` }));
  const servers = new Set(clients.map((c) => c.hellos[0]?.server));
  expect(servers.size).toBe(2);

  for (let i = 0; i < 40; i++) {
    const res = await http(lbUrl, 'POST', '/orders', { customer_name: `Through nginx ${i}`, product_name: 'LB' });
    expect(res.status).toBe(201);
  }
  expect(await settle(db.sql, clients)).toEqual(cleanReports(clients));

  // Which server id is the first instance? Ask it directly.
  const direct = await openClient({
    http: instances[0]?.url as string,
    ws: `${instances[0]?.url.replace('http', 'ws')}/ws`,
    name: 'direct',
  });
  const victimId = direct.hellos[0]?.server;
  await direct.close();
  const victims = clients.filter((c) => c.hellos[0]?.server === victimId);
  expect(victims.length).toBeGreaterThan(0);

  const writing = (async () => {
    for (let i = 0; i < 60; i++) {
      await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('During failover', 'LB')");
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  instances[0]?.proc.kill('SIGKILL');
  for (const c of victims) {
    await c.waitClosed();
    await waitFor(
      async () => {
        try {
          await c.connect();
          return true;
        } catch {
          return false;
        }
      },
      { timeout: 15_000, message: `${c.name} reconnects through nginx` },
    );
    expect(c.hellos[c.hellos.length - 1]?.server).not.toBe(victimId);
  }
  await writing;
  for (let i = 0; i < 10; i++)
    expect((await http(lbUrl, 'POST', '/orders', { customer_name: `After ${i}`, product_name: 'LB' })).status).toBe(201);
  expect(await settle(db.sql, clients)).toEqual(cleanReports(clients));
});

it('answers 503 problem+json with Retry-After, not an HTML 502, while no instance can answer', { timeout: 60_000 }, async () => {
  // After the first test only instances[1] is left; stop it too (the moment of a rolling restart or a
  // crash where neither is up).
  const last = instances[1] as (typeof instances)[0];
  last.proc.kill('SIGKILL');
  await new Promise((r) => last.proc.once('exit', r));
  for (const [method, body] of [
    ['GET', undefined],
    ['POST', { customer_name: 'Nobody home', product_name: 'LB' }],
  ] as const) {
    const res = await fetch(`${lbUrl}/orders`, {
      method,
      headers: body ? { 'content-type': 'application/json', 'idempotency-key': `k-${method}` } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('retry-after')).toBe('1');
    const problem = await res.json();
    expect(problem).toMatchObject({ status: 503, code: 'no-instance', type: '/problems/no-instance' });
  }
  // Nothing was written meanwhile.
  const { rows } = await db.sql.query("SELECT count(*)::int AS n FROM orders WHERE customer_name = 'Nobody home'");
  expect(rows[0].n).toBe(0);
});
