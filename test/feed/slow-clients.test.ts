import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/** Clients that misbehave: never read, flood, send garbage. The server and the other clients are unhurt. */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];
const sockets: net.Socket[] = [];
const MAX_BUFFERED = 64 * 1024;

const track = (c: TestFeedClient) => {
  clients.push(c);
  return c;
};

/** A raw TCP client that completes the WebSocket upgrade and then never reads another byte. */
async function neverReads(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade failed: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
  });
  return socket;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 120);
  svc = await startService(db.url, { WS_MAX_BUFFERED_BYTES: String(MAX_BUFFERED), FEED_MEMORY_CHANGES: '200' });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

describe('a client that does not read', () => {
  it('is closed with 1013, the server does not buffer for it, and the other clients stay fast', async () => {
    const fast = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'fast' }));
    const slow = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'slow' }));
    slow.pauseReading();
    await neverReads(svc.port);
    await waitFor(() => svc.service.hub.stats.clients === 3, { message: 'three clients' });
    const [marker] = (await insertOrders(db.sql, 1)) as [number];
    await waitFor(() => fast.view.has(marker));

    const heapBefore = process.memoryUsage().heapUsed;
    let maxBuffered = 0;
    let maxHeapGrowth = 0;
    let maxLatency = 0;
    let rounds = 0;
    // Each round writes ~2 MB of changes (100 orders with ~9 KB of notes, row and old row); a client that
    // does not read fills its kernel buffers within a few rounds, then the server's bound.
    for (let round = 0; round < 40 && svc.service.hub.stats.slowClosed < 2; round++) {
      rounds++;
      await db.sql.query(
        `UPDATE orders SET notes = repeat(md5(random()::text), 280)
         WHERE id IN (SELECT id FROM orders WHERE id <> $1 ORDER BY id LIMIT 100)`,
        [marker],
      );
      const started = Date.now();
      await db.sql.query('UPDATE orders SET quantity = $2 WHERE id = $1', [marker, round + 2]);
      await waitFor(() => fast.view.get(marker)?.order.quantity === round + 2, { message: 'the fast client got the marker' });
      maxLatency = Math.max(maxLatency, Date.now() - started);
      for (const c of svc.service.hub.listClients()) maxBuffered = Math.max(maxBuffered, c.bufferedBytes);
      maxHeapGrowth = Math.max(maxHeapGrowth, process.memoryUsage().heapUsed - heapBefore);
    }
    expect(svc.service.hub.stats.slowClosed).toBe(2);
    // Closed after a few MB (kernel buffers plus the bound), not after everything was queued for them.
    expect(rounds).toBeLessThanOrEqual(8);
    // What one broadcast may add past the bound: at most one frame (≤ 500 changes of ~19 KB).
    expect(maxBuffered).toBeLessThan(MAX_BUFFERED + 10 * 1024 * 1024);
    expect(maxHeapGrowth).toBeLessThan(150 * 1024 * 1024);
    expect(maxLatency).toBeLessThan(1500);

    // The paused client reads again: it finds the 1013 close, resumes from its cursor, and lost nothing.
    slow.resumeReading();
    expect(await slow.waitClosed()).toBe(1013);
    await slow.connect();
    await waitFor(() => svc.service.hub.stats.clients === 2, { message: 'the raw client dropped, the slow one back' });
    expect(await settle(db.sql, [fast, slow])).toEqual(cleanReports([fast, slow]));
  });
});

describe('client messages', () => {
  it('answers ping with pong, and malformed or unknown messages with an error frame', async () => {
    const c = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'talker' }));
    c.send('{"type":"ping"}');
    c.send('{not json');
    c.send('"just a string"');
    c.send('{"type":"subscribe"}');
    await waitFor(() => c.pongs === 1 && c.errors.length === 3, { message: 'one pong and three errors' });
    expect(c.errors.map((e) => e.code)).toEqual(['malformed-message', 'malformed-message', 'unknown-message-type']);
    expect(c.connected).toBe(true);
    // The stream still works.
    await db.sql.query("UPDATE orders SET notes = 'still streaming' WHERE id = (SELECT min(id) FROM orders)");
    expect(await settle(db.sql, [c])).toEqual(cleanReports([c]));
  });

  it('throttles a flood of messages and closes a sustained one with 1008', async () => {
    const c = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'flooder' }));
    for (let i = 0; i < 100; i++) c.send('{"type":"ping"}');
    await waitFor(() => c.errors.some((e) => e.code === 'rate-limited'), { message: 'a rate-limited error' });
    // 20/s sustained, 40 as a burst: far fewer than 100 pongs.
    await waitFor(() => c.pongs >= 40);
    expect(c.pongs).toBeLessThan(60);
    expect(c.connected).toBe(true);
    for (let i = 0; i < 400; i++) c.send('{"type":"ping"}');
    expect(await c.waitClosed()).toBe(1008);
  });

  it('closes the connection with 1009 on a frame over the size limit', async () => {
    const c = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'big' }));
    c.send(JSON.stringify({ type: 'ping', padding: 'x'.repeat(5000) }));
    expect(await c.waitClosed()).toBe(1009);
  });
});
