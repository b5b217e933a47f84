import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../src/auth/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { http, type RunningService, startService } from './helpers/service.js';

/**
 * GET /orders.csv streams from one transaction, so an export holds a database connection for as long
 * as its client takes to read the file. A client that never reads (a stalled download, or a viewer
 * token used on purpose) must not be able to take the pool from everyone else: exports run a bounded
 * number at a time (CSV_EXPORTS_MAX, the rest answered 429 with Retry-After), and one whose client takes
 * nothing for CSV_EXPORT_STALL_MS is cut off, which ends its transaction.
 */
let db: TestDatabase;
const viewer = generateToken();
const auth = { authorization: `Bearer ${viewer}` };
const sockets: net.Socket[] = [];
const services: RunningService[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3)', ['wall', 'viewer', hashToken(viewer)]);
  // ~9 MB of CSV: far more than loopback's socket buffers (~4 MB), so a client that does not read stalls the export.
  await db.sql.query(`
    INSERT INTO orders (customer_name, product_name, notes)
    SELECT 'Customer ' || i, 'Lamp', repeat('n', 9000) FROM generate_series(1, 1000) i`);
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of services.splice(0)) await s.close();
});

afterAll(async () => {
  await db?.drop();
});

async function start(settings: Record<string, string>): Promise<RunningService> {
  const svc = await startService(db.url, { AUTH_CACHE_MS: '0', ...settings });
  services.push(svc);
  return svc;
}

/** Asks for the CSV on a raw socket and never reads past the status line: a download that stalls. */
async function stalledExport(url: string): Promise<{ status: number; socket: net.Socket }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET /orders.csv HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: ${auth.authorization}\r\n\r\n`);
  const first = await new Promise<Buffer>((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
  });
  socket.pause();
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(first.toString('latin1'))?.[1]), socket };
}

/**
 * The service's connections that hold an export's transaction: waiting for its client (idle in
 * transaction) or fetching its next rows (active), known by the export's cursor and snapshot queries.
 */
async function exportsHolding(): Promise<number> {
  const { rows } = await db.sql.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'orders-api' AND state IN ('active', 'idle in transaction')
       AND (query LIKE '%orders_export%' OR query LIKE '%feed_snapshot_cursor%')`,
  );
  return rows[0].n;
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

describe('CSV exports whose clients never read', () => {
  it('cannot take the pool: beyond CSV_EXPORTS_MAX an export answers 429, and the API keeps answering', async () => {
    const svc = await start({ DB_POOL_MAX: '4', CSV_EXPORTS_MAX: '2', DB_CONNECT_TIMEOUT_MS: '3000' });
    const stalled = [];
    for (let i = 0; i < 4; i++) stalled.push(await stalledExport(svc.url));
    expect(stalled.map((s) => s.status)).toEqual([200, 200, 429, 429]);
    expect(await until(async () => (await exportsHolding()) === 2, 3000)).toBe(true);

    const refused = await http(svc.url, 'GET', '/orders.csv', undefined, auth);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body).toMatchObject({ status: 429, code: 'export-busy' });

    // The rest of the pool still serves everyone else, at once.
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      const res = await http(svc.url, 'GET', '/orders?limit=1', undefined, auth);
      expect(res.status).toBe(200);
    }
    expect(Date.now() - t0).toBeLessThan(2000);

    // A finished export frees its place: the stalled ones end, and the next export is served whole.
    for (const s of stalled) s.socket.destroy();
    expect(await until(async () => (await exportsHolding()) === 0, 5000)).toBe(true);
    const whole = await http(svc.url, 'GET', '/orders.csv', undefined, auth);
    expect(whole.status).toBe(200);
    expect(whole.text.split('\r\n').length).toBe(1000 + 2);
  });

  it('are cut off after CSV_EXPORT_STALL_MS, which ends their transaction and frees the connection', async () => {
    const svc = await start({ DB_POOL_MAX: '4', CSV_EXPORTS_MAX: '1', CSV_EXPORT_STALL_MS: '1000' });
    const stalled = await stalledExport(svc.url);
    expect(stalled.status).toBe(200);
    const closed = new Promise<void>((resolve) => stalled.socket.once('close', () => resolve()));
    expect(await until(async () => (await exportsHolding()) === 1, 3000)).toBe(true);
    expect(await until(async () => (await exportsHolding()) === 0, 4000)).toBe(true);
    stalled.socket.resume();
    await closed;
    // Its place is free again.
    const next = await http(svc.url, 'GET', '/orders.csv', undefined, auth);
    expect(next.status).toBe(200);
    expect(next.text.split('\r\n').length).toBe(1000 + 2);
  });

  it('are cut off after CSV_EXPORT_MAX_MS even when the client reads just enough never to stall', async () => {
    const svc = await start({ CSV_EXPORT_STALL_MS: '20000', CSV_EXPORT_MAX_MS: '1500' });
    const slow = await stalledExport(svc.url);
    expect(slow.status).toBe(200);
    let received = 0;
    const closed = new Promise<void>((resolve) => slow.socket.once('close', () => resolve()));
    // 64 KB every 200 ms: the export never waits long for its client, so the stall limit never fires.
    const reading = setInterval(() => {
      for (let chunk = slow.socket.read(); chunk; chunk = slow.socket.read()) received += chunk.length;
    }, 200);
    try {
      expect(await until(async () => (await exportsHolding()) === 1, 3000)).toBe(true);
      const t0 = Date.now();
      expect(await until(async () => (await exportsHolding()) === 0, 6000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(4000);
      slow.socket.resume();
      slow.socket.on('data', (c: Buffer) => (received += c.length));
      await closed;
    } finally {
      clearInterval(reading);
    }
    // Cut off: the client never got the whole file (about 9 MB).
    expect(received).toBeLessThan(9_000_000);
  });

  it('are cut off when the service stops, once its drain is over, so a stalled download cannot hold the stop', async () => {
    const svc = await start({ SHUTDOWN_TIMEOUT_MS: '3000' });
    const stalled = await stalledExport(svc.url);
    expect(stalled.status).toBe(200);
    expect(await until(async () => (await exportsHolding()) === 1, 3000)).toBe(true);
    const t0 = Date.now();
    services.splice(services.indexOf(svc), 1);
    let giveUp: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      svc.close().then(() => 'stopped'),
      new Promise((r) => {
        giveUp = setTimeout(() => r('still running'), 10_000);
      }),
    ]);
    clearTimeout(giveUp);
    expect(stopped).toBe('stopped');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await exportsHolding()).toBe(0);
  });
});

describe('HEAD /orders.csv and a pool with no connection to spare', () => {
  it('HEAD answers the headers without running the export, so it takes no place', async () => {
    const svc = await start({ CSV_EXPORTS_MAX: '1' });
    for (let i = 0; i < 3; i++) {
      const head = await fetch(`${svc.url}/orders.csv`, { method: 'HEAD', headers: auth });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toMatch(/^text\/csv/);
      expect(head.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-.*\.csv"$/);
    }
    // Had the HEADs run their exports, this one would find the place taken (429).
    const whole = await http(svc.url, 'GET', '/orders.csv', undefined, auth);
    expect(whole.status).toBe(200);
    expect(whole.text.split('\r\n').length).toBe(1000 + 2);
  });

  it('runs no exports with a pool of one (503 exports-off), and the API still answers', async () => {
    const svc = await start({ DB_POOL_MAX: '1' });
    const res = await http(svc.url, 'GET', '/orders.csv', undefined, auth);
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 503, code: 'exports-off' });
    expect((await http(svc.url, 'GET', '/orders?limit=1', undefined, auth)).status).toBe(200);
  });
});
