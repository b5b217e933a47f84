import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type RunningService, startService } from '../helpers/service.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * A saturated broadcaster holds a filtered view's changes back for a fuller frame (realtime/broadcast.ts).
 * Meanwhile its quiet clients still get heartbeats, and a heartbeat's cursor is what a client resumes
 * from, on any instance: it must not pass a held change. Here one instance is made saturated (1% of the
 * loop for broadcasting, a hundred sockets, a steady stream of writes the filter does not match); a
 * client of `status=shipped` takes the last heartbeat before each shipped order reaches it and resumes
 * from it on another instance, which must send that order.
 */
let db: TestDatabase;
let busy: RunningService;
let other: RunningService;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  busy = await startService(db.url, {
    WS_BROADCAST_PERCENT: '1',
    WS_HEARTBEAT_MS: '100',
    WS_MAX_CONNECTIONS_PER_ADDRESS: '0',
    WS_MAX_CONNECTIONS_PER_TOKEN: '0',
  });
  other = await startService(db.url, {});
});

afterAll(async () => {
  for (const s of sockets) s.terminate();
  await busy?.close();
  await other?.close();
  await db?.drop();
});

function open(url: string, onMessage: (m: { type: string; cursor?: string; changes?: { order: { id: number } }[] }) => void) {
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'hello') resolve(ws);
      onMessage(m);
    });
    ws.on('error', reject);
  });
}

it('a heartbeat never tells a filtered client a cursor past a change held for it', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 100; i += 25) await Promise.all(Array.from({ length: 25 }, () => open(busy.wsUrl, () => undefined)));
  const events: { at: number; kind: 'heartbeat' | 'change'; cursor?: string; id?: number }[] = [];
  await open(`${busy.wsUrl}?status=shipped`, (m) => {
    if (m.type === 'heartbeat') events.push({ at: Date.now(), kind: 'heartbeat', cursor: m.cursor as string });
    if (m.type === 'changes') for (const c of m.changes ?? []) events.push({ at: Date.now(), kind: 'change', id: c.order.id });
  });
  let writing = true;
  const writer = (async () => {
    while (writing) {
      await db.sql.query("INSERT INTO orders (customer_name, product_name, status) VALUES ('Busy', 'Widget', 'pending')");
      await sleep(10);
    }
  })();
  try {
    await sleep(1000);
    // Whether a given order is held depends on the moment (the loop must have been saturated lately):
    // try until two were held with heartbeats meanwhile, and check each of those.
    let held = 0;
    for (let round = 0; round < 12 && held < 2; round++) {
      const deferrals = busy.service.hub.stats.viewDeferrals;
      const committed = Date.now();
      const { rows } = await db.sql.query<{ id: string; status: string }>(
        `INSERT INTO orders (customer_name, product_name, status)
         SELECT 'Round ${round}', 'Widget', s FROM unnest(ARRAY['pending','pending','shipped','pending','pending']) s RETURNING id, status`,
      );
      const shipped = Number(rows.find((r) => r.status === 'shipped')?.id);
      const arrived = await waitFor(() => events.find((e) => e.kind === 'change' && e.id === shipped), {
        timeout: 10_000,
        message: `the shipped order ${shipped} on the busy instance`,
      });
      expect(events.filter((e) => e.kind === 'change' && e.id === shipped)).toHaveLength(1);
      const beats = events.filter((e) => e.kind === 'heartbeat' && e.at >= committed && e.at <= arrived.at);
      if (busy.service.hub.stats.viewDeferrals === deferrals || beats.length === 0) continue;
      held++;
      // Resume from the last heartbeat before it arrived, on the other instance: the shipped order must come.
      const last = beats[beats.length - 1]?.cursor as string;
      const got: number[] = [];
      const resumed = await open(`${other.wsUrl}?status=shipped&after=${encodeURIComponent(last)}`, (m) => {
        if (m.type === 'changes') for (const c of m.changes ?? []) got.push(c.order.id);
      });
      await waitFor(() => got.includes(shipped), { timeout: 5000, message: `order ${shipped} after resuming from the heartbeat` });
      resumed.terminate();
    }
    expect(held).toBe(2);
  } finally {
    writing = false;
    await writer;
  }
});
