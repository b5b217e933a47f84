import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/** The LISTEN connection failing for real: killed backends, a blackholed network. Nothing may be lost. */
let db: TestDatabase;
const clients: TestFeedClient[] = [];
const services: RunningService[] = [];
const proxies: TcpProxy[] = [];

const FAST_RECONNECT = { LISTENER_BACKOFF_MIN_MS: '50', LISTENER_BACKOFF_MAX_MS: '400', DB_CONNECT_TIMEOUT_MS: '1000' };

async function serviceWith(settings: Record<string, string>): Promise<RunningService> {
  const s = await startService(db.url, { ...FAST_RECONNECT, ...settings });
  services.push(s);
  return s;
}

async function clientsOf(s: RunningService, n: number): Promise<TestFeedClient[]> {
  const made = await Promise.all(Array.from({ length: n }, (_, i) => openClient({ http: s.url, ws: s.wsUrl, name: `client-${i}` })));
  clients.push(...made);
  return made;
}

async function readyz(s: RunningService) {
  const res = await http(s.url, 'GET', '/readyz');
  return res.body.checks.listener as { ok: boolean; status: string; reconnects: number };
}

/** The listener's backend in this test's database (other files' services share the cluster). */
async function listenerPid(): Promise<number | undefined> {
  const { rows } = await db.sql.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'orders-listener' AND datname = current_database()",
  );
  return rows.length === 1 ? rows[0]?.pid : undefined;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 100);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  await db?.drop();
});

describe('listener failures', () => {
  it('loses nothing when its backend is killed again and again under ~200 writes/s', async () => {
    const s = await serviceWith({ FEED_POLL_MS: '1000' });
    const all = await clientsOf(s, 3);
    const writer = steadyWriter(db.sql, { perSecond: 200, durationMs: 3500, workers: 4 });
    let kills = 0;
    while (kills < 25) {
      const pid = await waitFor(listenerPid, { message: 'the listener reconnected' });
      const { rows } = await db.sql.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
      if (rows[0]?.ok) kills++;
      if (writer.writes + writer.failures >= 700) break;
      await sleep(150);
    }
    await writer.done;
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(writer.writes).toBeGreaterThan(500);
    await waitFor(async () => (await readyz(s)).status === 'connected', { message: 'the listener connected again' });
    expect((await readyz(s)).reconnects).toBeGreaterThanOrEqual(kills);
    expect(await settle(db.sql, all)).toEqual(cleanReports(all));
  });

  it('detects a blackholed LISTEN connection within about two keepalive periods, reconnects, and loses nothing', async () => {
    const proxy = await TcpProxy.start(Number(new URL(db.url).port));
    proxies.push(proxy);
    const keepalive = 500;
    const s = await serviceWith({
      DATABASE_LISTEN_URL: proxy.urlFor(db.url),
      LISTENER_KEEPALIVE_MS: String(keepalive),
      LISTENER_KEEPALIVE_TIMEOUT_MS: String(keepalive),
      FEED_POLL_MS: '1000',
    });
    const all = await clientsOf(s, 2);
    await waitFor(async () => (await readyz(s)).status === 'connected', { message: 'the listener connected' });
    const before = (await readyz(s)).reconnects;
    const writer = steadyWriter(db.sql, { perSecond: 50, durationMs: 4000 });
    await waitFor(() => writer.writes > 20);
    proxy.blackhole();
    const cutAt = Date.now();
    await waitFor(async () => (await readyz(s)).status !== 'connected', { timeout: 5000, interval: 20, message: 'blackhole detected' });
    const detectedIn = Date.now() - cutAt;
    // A keepalive is at most one period away and gets one period to answer.
    expect(detectedIn).toBeLessThan(2 * (keepalive + keepalive));
    expect((await readyz(s)).reconnects).toBeGreaterThan(before);
    // Still blackholed: reconnect attempts hang and time out; the feed keeps moving on its timer.
    await sleep(1000);
    expect(s.service.listener.state.status).not.toBe('connected');
    proxy.pass();
    await waitFor(async () => (await readyz(s)).status === 'connected', { timeout: 10_000, message: 'recovered after the blackhole' });
    await writer.done;
    expect(await settle(db.sql, all)).toEqual(cleanReports(all));
    // Notifications flow again: a write reaches clients well before the 1 s safety-net read would.
    const [id] = (await insertOrders(db.sql, 1)) as [number];
    await waitFor(() => all.every((c) => c.view.has(id)), { message: 'the new order' });
    const heard = s.service.listener.state.notifications;
    await db.sql.query("UPDATE orders SET notes = 'after recovery' WHERE id = $1", [id]);
    await waitFor(() => all.every((c) => c.view.get(id)?.order.notes === 'after recovery'), { message: 'the change after recovery' });
    await waitFor(() => s.service.listener.state.notifications > heard, { message: 'the listener hears NOTIFY again' });
  });

  it('loses nothing when every connection to the database is cut and then blackholed', async () => {
    const proxy = await TcpProxy.start(Number(new URL(db.url).port));
    proxies.push(proxy);
    const viaProxy = proxy.urlFor(db.url);
    const s = await startService(viaProxy, {
      ...FAST_RECONNECT,
      DATABASE_LISTEN_URL: viaProxy,
      LISTENER_KEEPALIVE_MS: '500',
      LISTENER_KEEPALIVE_TIMEOUT_MS: '500',
      DB_QUERY_TIMEOUT_MS: '1000',
      FEED_POLL_MS: '300',
    });
    services.push(s);
    const all = await clientsOf(s, 2);
    const writer = steadyWriter(db.sql, { perSecond: 60, durationMs: 4000 });
    await waitFor(() => writer.writes > 30);
    proxy.cut();
    await waitFor(() => writer.writes > 90);
    proxy.blackhole();
    await waitFor(() => writer.writes > 150);
    proxy.pass();
    await writer.done;
    expect(await settle(db.sql, all, 20_000)).toEqual(cleanReports(all));
    expect(s.service.listener.state.reconnects).toBeGreaterThanOrEqual(2);
  });
});
