import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from './helpers/feed-client.js';
import { http, type RunningService, startService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';
import { steadyWriter } from './helpers/writes.js';

/** What the people running the service see and do: health, metrics, debug tools, rolling restarts. */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];
const extra: RunningService[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(extra.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
};

describe('health', () => {
  it('reports liveness and readiness with their checks', async () => {
    const live = await http<any>(svc.url, 'GET', '/healthz');
    expect(live.status).toBe(200);
    expect(live.body.status).toBe('ok');
    // Ready once the listener has connected (a moment after start).
    const ready = await waitFor(async () => {
      const r = await http<any>(svc.url, 'GET', '/readyz');
      return r.status === 200 ? r : null;
    });
    expect(Object.keys(ready.body.checks).sort()).toEqual(['database', 'feed', 'listener', 'migrations', 'shutdown', 'websocket']);
    expect(ready.body.checks.listener).toMatchObject({ ok: true, status: 'connected' });
  });
});

describe('metrics', () => {
  it('exports HTTP, WebSocket, feed, listener, pool and event-loop metrics', async () => {
    const client = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'metrics' });
    clients.push(client);
    await http(svc.url, 'POST', '/orders', { customer_name: 'Metric', product_name: 'Counted' });
    await waitFor(() => client.received.length >= 1);
    const before = (await http(svc.url, 'GET', '/metrics')).text;
    expect(before).toMatch(/http_request_duration_seconds_count\{route="\/orders",method="POST",status_code="201"\} 1/);
    expect(metric(before, 'ws_clients')).toBe(1);
    expect(metric(before, 'ws_changes_sent_total')).toBeGreaterThanOrEqual(1);
    expect(metric(before, 'ws_frames_sent_total')).toBeGreaterThanOrEqual(1);
    expect(metric(before, 'listener_connected')).toBe(1);
    expect(metric(before, 'feed_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(metric(before, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(before).toMatch(/db_pool_connections\{state="total"\} \d+/);
    expect(before).toMatch(/^change_log_rows \d+/m);
    expect(before).toMatch(/^ws_slow_client_closes_total 0/m);

    const reconnectsBefore = metric(before, 'listener_reconnects_total') ?? 0;
    await db.sql.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orders-listener' AND datname = current_database()",
    );
    await waitFor(async () => metric((await http(svc.url, 'GET', '/metrics')).text, 'listener_reconnects_total') === reconnectsBefore + 1);
    await waitFor(async () => metric((await http(svc.url, 'GET', '/metrics')).text, 'listener_connected') === 1);
  });
});

describe('debug endpoints', () => {
  it('checks that the triggers are installed and fire always', async () => {
    const ok = await http<any>(svc.url, 'GET', '/debug/triggers');
    expect(ok.body).toEqual({
      ok: true,
      triggers: [
        { name: 'orders_capture', installed: true, enabled: true, always: true },
        { name: 'orders_history', installed: true, enabled: true, always: true },
        { name: 'orders_normalize', installed: true, enabled: true, always: true },
        { name: 'orders_refuse_truncate', installed: true, enabled: true, always: true },
        { name: 'orders_summarise', installed: true, enabled: true, always: true },
      ],
    });
    await db.sql.query('ALTER TABLE orders DISABLE TRIGGER orders_capture');
    try {
      const broken = await http<any>(svc.url, 'GET', '/debug/triggers');
      expect(broken.body.ok).toBe(false);
      expect(broken.body.triggers[0]).toEqual({ name: 'orders_capture', installed: true, enabled: false, always: false });
      // Enabled again the ordinary way (what pg_restore --disable-triggers does): it would miss replication sessions.
      await db.sql.query('ALTER TABLE orders ENABLE TRIGGER orders_capture');
      const ordinary = await http<any>(svc.url, 'GET', '/debug/triggers');
      expect(ordinary.body.ok).toBe(false);
      expect(ordinary.body.triggers[0]).toEqual({ name: 'orders_capture', installed: true, enabled: true, always: false });
    } finally {
      await db.sql.query('ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_capture');
    }
    expect((await http<any>(svc.url, 'GET', '/debug/triggers')).body.ok).toBe(true);
  });

  it('sends a real change through the whole path and reports its round trip', async () => {
    const client = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'probe-watcher' });
    clients.push(client);
    const res = await http<any>(svc.url, 'POST', '/debug/roundtrip');
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
    expect(res.body.commit_to_feed_ms).toBeGreaterThanOrEqual(0);
    expect(res.body.total_ms).toBeGreaterThan(0);
    expect(res.body.total_ms).toBeLessThan(5000);
    const { rows } = await db.sql.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [res.body.order_id]);
    expect(rows[0].n).toBe(0);
    await waitFor(() => client.received.filter((c) => c.id === res.body.order_id).length === 2);
  });

  it('lists connected clients with their cursors', async () => {
    const client = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'listed' });
    clients.push(client);
    const res = await http<any>(svc.url, 'GET', '/debug/clients');
    expect(res.body.clients).toHaveLength(1);
    expect(res.body.clients[0]).toMatchObject({ live: true, remote: '127.0.0.1' });
    expect(typeof res.body.clients[0].cursor).toBe('string');
    expect(typeof res.body.head).toBe('string');
  });

  it('can be switched off', async () => {
    const off = await startService(db.url, { DEBUG_ENDPOINTS: 'false' });
    extra.push(off);
    expect((await http(off.url, 'GET', '/debug/triggers')).status).toBe(404);
    expect((await http(off.url, 'POST', '/debug/roundtrip')).status).toBe(404);
  });
});

describe('API documentation', () => {
  it('serves OpenAPI generated from the validation schemas', async () => {
    const doc = await http<any>(svc.url, 'GET', '/docs/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/orders', '/orders/{id}', '/orders/stats']));
    const post = doc.body.paths['/orders'].post;
    expect(post.requestBody.content['application/json'].schema.required).toEqual(['customer_name', 'product_name']);
    expect(post.requestBody.content['application/json'].schema.properties.quantity).toMatchObject({ minimum: 1, maximum: 100000 });
    const redirect = await fetch(`${svc.url}/docs`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    const protocol = await fetch(`${svc.url}/docs/protocol.md`);
    expect(protocol.headers.get('content-type')).toMatch(/^text\/markdown/);
    expect(await protocol.text()).toContain('/ws?after=');
  });
});

describe('rolling restart', () => {
  it('restarts two instances one after the other under steady writes; clients resume elsewhere and lose nothing', {
    timeout: 90_000,
  }, async () => {
    let a = await startService(db.url);
    let b = await startService(db.url);
    extra.push(a, b);
    const onA = await Promise.all([0, 1, 2].map((i) => openClient({ http: a.url, ws: a.wsUrl, name: `a${i}` })));
    const onB = await Promise.all([0, 1, 2].map((i) => openClient({ http: b.url, ws: b.wsUrl, name: `b${i}` })));
    clients.push(...onA, ...onB);
    const writer = steadyWriter(db.sql, { perSecond: 100, durationMs: 6000 });

    const restart = async (old: RunningService, moving: TestFeedClient[], to: RunningService): Promise<RunningService> => {
      await new Promise((r) => setTimeout(r, 1000));
      const closing = old.close();
      const codes = await Promise.all(moving.map((c) => c.waitClosed()));
      expect(codes.every((code) => code === 1012)).toBe(true);
      for (const c of moving) {
        c.http = to.url;
        c.wsUrl = to.wsUrl;
        await c.connect();
      }
      await closing;
      return startService(db.url);
    };
    a = await restart(a, onA, b);
    extra.push(a);
    b = await restart(b, [...onA, ...onB], a);
    extra.push(b);
    await writer.done;
    expect(writer.writes).toBeGreaterThan(300);
    expect(await settle(db.sql, [...onA, ...onB], 20_000)).toEqual(cleanReports([...onA, ...onB]));
  });
});
