import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { checkClient, readHistory, readTable, TestFeedClient } from './helpers/feed-client.js';
import { type RunningService, startService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';
import { insertOrders } from './helpers/writes.js';

/**
 * The soak's clients (soak/clients.ts) are FeedClients with automatic resync, under a supervisor that
 * reconnects whenever the socket is closed. The 2-minute soak once reported two changes "duplicated"
 * for one client just after a PostgreSQL crash during a rolling restart: the supervisor reconnected
 * with the client's last cursor while the resync that the reset had started was still loading its
 * snapshot. The instance that reset the client had noticed the crash; the other, reached through
 * nginx, had not, and accepted the old cursor. Two sockets then streamed into the epoch the new
 * snapshot began, and what the old one caught up on was already in that snapshot. A dashboard has one
 * socket: a reconnect during a resync must wait for it.
 */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await svc?.close();
  await db?.drop();
});

it('a reconnect racing the automatic resync after a reset waits for it: one socket at a time, nothing twice', async () => {
  const c = new TestFeedClient({ http: svc.url, ws: svc.wsUrl, name: 'raced', autoResync: true });
  clients.push(c);
  await c.loadSnapshot();
  await c.connect();
  // A cursor the server accepts that lacks the orders written next (the other instance's view of it).
  const behind = c.cursor as string;
  await insertOrders(db.sql, 5);
  await waitFor(() => c.received.length === 5, { message: 'the five orders streamed' });

  // The server resets the stream (here: it was reopened with a cursor the service never issued)...
  await c.disconnect();
  c.cursor = 'not-a-cursor';
  await c.connect();
  expect(c.resets.map((r) => r.reason)).toEqual(['cursor-malformed']);
  const reset = c.socket;
  if (!reset) throw new Error('no socket');
  // ...and the supervisor, finding it closed, reconnects with the last cursor it knows while the resync
  // the close started is still loading its snapshot.
  let racing: Promise<void> | undefined;
  const reconnect = () => {
    c.cursor = behind;
    racing = c.connect();
  };
  if (reset.readyState === reset.CLOSED) throw new Error('closed before the race could be set up');
  reset.once('close', reconnect);
  await waitFor(() => racing !== undefined, { message: 'the reset socket closed' });
  await racing;
  await expect(c.settledResync()).resolves.toBeUndefined();
  await waitFor(() => c.connected, { message: 'streaming again' });

  // One socket on the server, and the last epoch (the resync's snapshot) received nothing it had.
  await new Promise((r) => setTimeout(r, 300));
  expect(svc.service.hub.stats.clients).toBe(1);
  const report = checkClient(c, await readHistory(db.sql), await readTable(db.sql));
  expect(report.duplicated).toEqual([]);
  expect(report.lost).toEqual([]);
  expect(report.viewMismatches).toEqual([]);
});
