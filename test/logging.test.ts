import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

/** Logs are structured, carry request ids, and never contain a credential. */
let db: TestDatabase;
let svc: RunningService;
const lines: string[] = [];
const token = generateToken();

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('logger', 'admin', $1)", [hashToken(token)]);
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  svc = await startService(db.url, {}, createLogger('info', false, sink));
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

it('redacts tokens from headers, URLs and subprotocols, and logs request ids', async () => {
  await http(svc.url, 'GET', '/orders', undefined, { authorization: `Bearer ${token}`, 'x-request-id': 'req-test-1' });
  await http(svc.url, 'GET', `/orders?token=${token}&access_token=${token}`, undefined, { authorization: `Bearer ${token}` });
  await http(svc.url, 'GET', '/orders', undefined, { authorization: 'Bearer ord_wrong-token-value-here' });
  await new Promise<void>((resolve) => {
    const ws = new WebSocket(svc.wsUrl, ['orders.v1', `bearer.${token}`]);
    ws.once('open', () => ws.close());
    ws.once('close', () => resolve());
    ws.once('error', () => resolve());
  });
  await new Promise((r) => setTimeout(r, 200));
  const all = lines.join('\n');
  expect(lines.length).toBeGreaterThan(4);
  expect(all).not.toContain(token);
  expect(all).not.toContain('ord_wrong-token-value-here');
  const parsed = lines.map((l) => JSON.parse(l));
  expect(parsed.some((l) => l.reqId === 'req-test-1' && l.req?.url === '/orders')).toBe(true);
  expect(parsed.some((l) => typeof l.req?.url === 'string' && l.req.url.includes('token=[redacted]'))).toBe(true);
});

it('redacts secret query parameters however their names are encoded, and keeps only plain request ids', async () => {
  lines.length = 0;
  const auth = { authorization: `Bearer ${token}` };
  for (const query of [`%74oken=${token}`, `TOKEN=${token}`, `%61ccess%5Ftoken=${token}`, `api_key=${token}&q=kept`, `to%6Ben=${token}`]) {
    await http(svc.url, 'GET', `/orders?${query}`, undefined, auth);
  }
  const hostile = `${'x'.repeat(300)}`;
  await http(svc.url, 'GET', '/orders', undefined, { ...auth, 'x-request-id': hostile });
  await http(svc.url, 'GET', '/orders', undefined, { ...auth, 'x-request-id': 'has spaces and "quotes"' });
  await http(svc.url, 'GET', '/orders', undefined, { ...auth, 'x-request-id': 'trace-42.a:b' });
  await new Promise((r) => setTimeout(r, 200));
  expect(lines.join('\n')).not.toContain(token);
  const parsed = lines.map((l) => JSON.parse(l));
  const urls = parsed.map((l) => l.req?.url).filter(Boolean);
  expect(urls).toContain('/orders?api_key=[redacted]&q=kept');
  expect(urls).toContain('/orders?%74oken=[redacted]');
  const ids = new Set(parsed.map((l) => l.reqId));
  expect(ids.has('trace-42.a:b')).toBe(true);
  expect(ids.has(hostile)).toBe(false);
  expect(ids.has('has spaces and "quotes"')).toBe(false);
  for (const id of ids) expect(String(id).length).toBeLessThanOrEqual(128);
});

it('logs each lifecycle event once, with its reason', async () => {
  lines.length = 0;
  await db.sql.query(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orders-listener' AND datname = current_database()",
  );
  const events = () => lines.map((l) => JSON.parse(l)).filter((l) => typeof l.event === 'string');
  const deadline = Date.now() + 10_000;
  while (!events().some((e) => e.event === 'listener.connected') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const lost = events().filter((e) => e.event === 'listener.lost');
  expect(lost).toHaveLength(1);
  expect(typeof lost[0].reason).toBe('string');
  expect(lost[0].retryInMs).toBeGreaterThan(0);
  expect(events().filter((e) => e.event === 'listener.connected')).toHaveLength(1);
});
