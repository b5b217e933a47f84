import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type RunningService, startService } from '../helpers/service.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * Once the stream's frames carry several changes, a filtered view's changes are held back until it has
 * about as many for a fuller frame (realtime/broadcast.ts), on a quiet server as on a saturated one.
 * Meanwhile its quiet clients still get heartbeats, and a heartbeat's cursor is what a client resumes
 * from, on any instance: it must not pass a held change. Each test resumes from such heartbeats on
 * another instance, which must send exactly what the held client got after them.
 */
let db: TestDatabase;
let quiet: RunningService;
let busy: RunningService;
let other: RunningService;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  quiet = await startService(db.url, { WS_HEARTBEAT_MS: '100' });
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
  await quiet?.close();
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

it('a quiet server sends a narrow view fuller frames; a heartbeat taken mid-hold resumes exactly', { timeout: 30_000 }, async () => {
  const events: { at: number; kind: 'heartbeat' | 'changes'; cursor?: string; ids?: number[] }[] = [];
  await open(`${quiet.wsUrl}?status=shipped`, (m) => {
    if (m.type === 'heartbeat') events.push({ at: Date.now(), kind: 'heartbeat', cursor: m.cursor as string });
    if (m.type === 'changes') events.push({ at: Date.now(), kind: 'changes', ids: (m.changes ?? []).map((c) => c.order.id) });
  });
  // One shipped order in each transaction of four: the server's frames carry four changes, the view's one.
  const shipped: { id: number; committed: number }[] = [];
  for (let i = 0; i < 40; i++) {
    const { rows } = await db.sql.query<{ id: string; status: string }>(
      `INSERT INTO orders (customer_name, product_name, status)
       SELECT 'Quiet ${i}', 'Widget', s FROM unnest(ARRAY['pending','shipped','pending','pending']) s RETURNING id, status`,
    );
    shipped.push({ id: Number(rows.find((r) => r.status === 'shipped')?.id), committed: Date.now() });
    await sleep(40);
  }
  const received = () => events.flatMap((e) => e.ids ?? []);
  await waitFor(() => received().length >= shipped.length, { timeout: 5000, message: 'every shipped order' });
  expect(received()).toEqual(shipped.map((s) => s.id));
  const messages = events.filter((e) => e.kind === 'changes').length;
  expect(messages).toBeLessThanOrEqual(shipped.length / 2);

  // A heartbeat while an order committed well before it was still held: resume from it elsewhere.
  const midHold = events.flatMap((e, i) => {
    if (e.kind !== 'heartbeat') return [];
    const after = events.slice(i + 1).flatMap((x) => x.ids ?? []);
    const waiting = shipped.some((s) => s.committed < e.at - 30 && after.includes(s.id));
    return waiting ? [{ cursor: e.cursor as string, after }] : [];
  });
  expect(midHold.length).toBeGreaterThan(0);
  for (const { cursor, after } of midHold.slice(-3)) {
    const got: number[] = [];
    const resumed = await open(`${other.wsUrl}?status=shipped&after=${encodeURIComponent(cursor)}`, (m) => {
      if (m.type === 'changes') for (const c of m.changes ?? []) got.push(c.order.id);
    });
    await waitFor(() => got.length >= after.length, { timeout: 5000, message: 'the orders after the heartbeat' });
    expect(got).toEqual(after);
    resumed.terminate();
  }
});

// One instance saturated (1% of the loop for broadcasting, a hundred sockets, a steady stream of writes
// the filter does not match): a client of `status=shipped` takes the last heartbeat before each shipped
// order reaches it and resumes from it on another instance, which must send that order.
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
    // Whether a given order is held depends on the moment (how full the stream's frames are lately):
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
