import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { http, type RunningService, startService } from './helpers/service.js';

/**
 * The database goes away under a running service, for real: a private PostgreSQL (not the suite's
 * shared one) is stopped mid-test and started again on the same port.
 */
const log = pino({ level: 'silent' });
let dir: string;
let pgServer: EmbeddedPostgres;
let svc: RunningService;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'orders-outage-'));
  pgServer = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
  const pool = new pg.Pool({ connectionString: pgServer.url, max: 1 });
  await migrate(pool, log);
  await pool.end();
  svc = await startService(pgServer.url, { DB_CONNECT_TIMEOUT_MS: '1000', LISTENER_BACKOFF_MAX_MS: '500' });
});

afterAll(async () => {
  await svc?.close();
  await pgServer?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('answers 503 with Retry-After while the database is down, and recovers without a restart', async () => {
  const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Before', product_name: 'Outage' });
  expect(created.status).toBe(201);

  await pgServer.stop();

  for (const [method, route, body] of [
    ['GET', '/orders', undefined],
    ['GET', '/orders/1', undefined],
    ['POST', '/orders', { customer_name: 'During', product_name: 'Outage' }],
    ['PATCH', '/orders/1', { status: 'shipped' }],
    ['GET', '/orders/stats', undefined],
  ] as const) {
    const res = await http<any>(svc.url, method, route, body);
    expect(res.status, `${method} ${route}`).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(res.body).toMatchObject({ code: 'database-unavailable', status: 503 });
    expect(res.text).not.toMatch(/ECONNREFUSED|terminat|at .*\.ts/);
  }
  const ready = await http<any>(svc.url, 'GET', '/readyz');
  expect(ready.status).toBe(503);
  expect(ready.body.checks.database.ok).toBe(false);
  expect((await http(svc.url, 'GET', '/healthz')).status).toBe(200);

  pgServer = await startEmbeddedPostgres({ dataDir: dir, port: pgServer.port, log });

  const deadline = Date.now() + 15_000;
  let after = await http<any>(svc.url, 'GET', '/orders');
  while (after.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    after = await http<any>(svc.url, 'GET', '/orders');
  }
  expect(after.status).toBe(200);
  expect(after.body.map((o: { customer_name: string }) => o.customer_name)).toEqual(['Before']);
  const write = await http<any>(svc.url, 'POST', '/orders', { customer_name: 'After', product_name: 'Outage' });
  expect(write.status).toBe(201);
  let readyAgain = await http<any>(svc.url, 'GET', '/readyz');
  while (readyAgain.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    readyAgain = await http<any>(svc.url, 'GET', '/readyz');
  }
  expect(readyAgain.body.checks.listener).toMatchObject({ ok: true, status: 'connected' });
  expect(readyAgain.body.checks.listener.reconnects).toBeGreaterThan(0);
});
