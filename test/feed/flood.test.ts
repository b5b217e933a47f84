import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor, within } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/**
 * A hostile WebSocket client sends as fast as it can (issue 10, finding 3). What the server does about
 * it must stay bounded: one log line, a closed socket, and no handling (no answers, no log lines) of
 * what the client sent after it was judged a flood. The other clients do not notice.
 */
let db: TestDatabase;
let svc: RunningService;
const lines: string[] = [];
const bystanders: TestFeedClient[] = [];
const raw: WebSocket[] = [];
const FRAMES = 20_000;
const RATE = 20;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 5);
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  svc = await startService(db.url, { WS_MAX_MESSAGES_PER_SEC: String(RATE) }, createLogger('info', false, sink));
});

afterEach(async () => {
  await Promise.all(bystanders.splice(0).map((c) => c.close()));
  for (const ws of raw.splice(0)) ws.terminate();
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

interface Flooder {
  ws: WebSocket;
  pongs: number;
  errors: string[];
  /** Protocol-level pongs (answers to our ping frames). */
  controlPongs: number;
  closed: Promise<number>;
}

async function flooder(): Promise<Flooder> {
  const ws = new WebSocket(svc.wsUrl, 'orders.v1');
  raw.push(ws);
  const f: Flooder = {
    ws,
    pongs: 0,
    errors: [],
    controlPongs: 0,
    closed: new Promise((resolve) => ws.once('close', (code) => resolve(code))),
  };
  ws.on('error', () => undefined);
  ws.on('pong', () => f.controlPongs++);
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as { type: string; code?: string };
    if (m.type === 'pong') f.pongs++;
    if (m.type === 'error') f.errors.push(m.code ?? '');
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return f;
}

const logged = (event: string) => lines.map((l) => JSON.parse(l) as { event?: string }).filter((l) => l.event === event);

describe('a client that floods its WebSocket', () => {
  it('is closed and logged once, and nothing it sends afterwards is handled or logged', async () => {
    const bystander = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'bystander' });
    bystanders.push(bystander);
    const f = await flooder();
    await waitFor(() => svc.service.hub.stats.clients === 2, { message: 'two clients' });
    lines.length = 0;

    // '{"type":"ping"}' is 15 bytes; masked, each frame is 21 bytes on the wire, as in the report.
    const started = Date.now();
    for (let i = 0; i < FRAMES; i++) f.ws.send('{"type":"ping"}');
    const code = await within(f.closed, 10_000, -1);
    const elapsed = (Date.now() - started) / 1000;
    // Whatever was still in flight is not handled; give it time to arrive and be (not) handled.
    await new Promise((r) => setTimeout(r, 300));

    expect([1008, 1006]).toContain(code);
    expect(logged('client.flood')).toHaveLength(1);
    // Handled: the burst (2 × rate) plus the sustained rate over the time it took, then nothing.
    expect(f.pongs).toBeLessThanOrEqual(2 * RATE + Math.ceil(RATE * elapsed) + 1);
    expect(f.errors.length).toBeLessThanOrEqual(Math.ceil(elapsed) + 2);
    // The service's whole log for this flood is a few lines, not megabytes.
    expect(lines.join('\n').length).toBeLessThan(10_000);
    await waitFor(() => svc.service.hub.stats.clients === 1, { message: 'the flooder is gone from the hub' });

    // The bystander still streams, and loses nothing.
    expect(bystander.connected).toBe(true);
    await insertOrders(db.sql, 3);
    expect(await settle(db.sql, [bystander])).toEqual(cleanReports([bystander]));
  });

  it('counts protocol pings against the same limit: a ping flood is not answered 20,000 times', async () => {
    const f = await flooder();
    await waitFor(() => svc.service.hub.stats.clients === 1, { message: 'one client' });
    lines.length = 0;
    const started = Date.now();
    for (let i = 0; i < FRAMES; i++) f.ws.ping();
    const code = await within(f.closed, 10_000, -1);
    const elapsed = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 300));

    expect([1008, 1006]).toContain(code);
    expect(logged('client.flood')).toHaveLength(1);
    expect(f.controlPongs).toBeLessThanOrEqual(2 * RATE + Math.ceil(RATE * elapsed) + 1);
    expect(lines.join('\n').length).toBeLessThan(10_000);
  });

  it('a well-behaved client that pings now and then is never throttled', async () => {
    const f = await flooder();
    for (let i = 0; i < 10; i++) {
      f.ws.send('{"type":"ping"}');
      f.ws.ping();
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(() => f.pongs === 10 && f.controlPongs === 10, { message: 'ten pongs of each kind' });
    expect(f.errors).toEqual([]);
    expect(f.ws.readyState).toBe(WebSocket.OPEN);
  });
});
