import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * One serialisation per distinct view: a thousand sockets on five filters cost five frame builds per
 * batch (counted by the hub, as `ws_frames_built_total`), not a thousand; and each socket still gets
 * only what its view holds.
 */
let db: TestDatabase;
let svc: RunningService;
const sockets: WebSocket[] = [];

const FILTERS = ['', 'status=pending', 'status=pending,processing', 'q=lap', 'status=pending&q=LAP'];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url, { WS_MAX_CONNECTIONS_PER_ADDRESS: '0', WS_MAX_CONNECTIONS_PER_TOKEN: '0' });
});

afterAll(async () => {
  for (const s of sockets) s.terminate();
  await svc?.close();
  await db?.drop();
});

it('builds each batch once per distinct view for 1,000 sockets on 5 filters', { timeout: 120_000 }, async () => {
  const received = new Map<WebSocket, number>();
  const open = (filter: string) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${svc.wsUrl}${filter ? `?${filter}` : ''}`, { perMessageDeflate: false });
      sockets.push(ws);
      received.set(ws, 0);
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type === 'hello') resolve();
        if (m.type === 'changes') received.set(ws, (received.get(ws) ?? 0) + m.changes.length);
      });
      ws.on('error', reject);
    });
  for (let i = 0; i < 1000; i += 50)
    await Promise.all(Array.from({ length: 50 }, (_, j) => open(FILTERS[(i + j) % FILTERS.length] as string)));
  expect(svc.service.hub.viewCount).toBe(5);
  const hub = svc.service.hub;
  for (let round = 0; round < 3; round++) {
    const before = hub.stats.framesBuilt;
    const sent = hub.stats.framesSent;
    // In every view (pending, "Laptop"): each of the 1,000 sockets gets it.
    await db.sql.query("INSERT INTO orders (customer_name, product_name, status) VALUES ('Ada', 'Laptop', 'pending')");
    await waitFor(() => [...received.values()].every((n) => n === round + 1), { timeout: 30_000, message: 'every socket got the insert' });
    expect(hub.stats.framesBuilt - before).toBe(5);
    expect(hub.stats.framesSent - sent).toBe(1000);
  }
  // In one view only (the unfiltered one): 200 sockets get it, built for every view that has sockets at most.
  const before = hub.stats.framesBuilt;
  await db.sql.query("INSERT INTO orders (customer_name, product_name, status) VALUES ('Bob', 'Desk', 'shipped')");
  await waitFor(() => [...received.values()].filter((n) => n === 4).length === 200, { timeout: 30_000, message: '200 sockets got it' });
  expect(hub.stats.framesBuilt - before).toBeLessThanOrEqual(5);
  expect([...received.values()].filter((n) => n === 3).length).toBe(800);
});
