import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { has, parseCursor } from '../../src/feed/cursor.js';
import { pruneChanges } from '../../src/feed/retention.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, readHistory, settle, TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders, randomWrite, steadyWriter } from '../helpers/writes.js';

/** Resuming: a client that was away gets exactly what it missed, or a reset, never a gap. */
let db: TestDatabase;
let svc: RunningService;
const clients: TestFeedClient[] = [];
const services: RunningService[] = [];
const databases: TestDatabase[] = [];
const open: pg.Client[] = [];

const track = (c: TestFeedClient) => {
  clients.push(c);
  return c;
};
const serviceWith = async (settings: Record<string, string>, url = db.url) => {
  const s = await startService(url, settings);
  services.push(s);
  return s;
};

async function writes(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await randomWrite(db.sql);
}

/** The committed changes a client at `cursor` lacks, in (xid, seq) order. */
async function committedAfter(sql: pg.Pool, cursor: string): Promise<string[]> {
  const at = parseCursor(cursor);
  if (!at) throw new Error(`not a cursor: ${cursor}`);
  return (await readHistory(sql)).filter((h) => !has(at, h.xid, h.seq)).map((h) => h.key);
}

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 60);
  svc = await startService(db.url);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(databases.splice(0).map((d) => d.drop()));
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

describe('resume with ?after=', () => {
  for (const [where, settings] of [
    ['memory', {}],
    ['the database', { FEED_MEMORY_CHANGES: '0' }],
  ] as const) {
    it(`gets exactly what it missed, served from ${where}`, async () => {
      const s = Object.keys(settings).length ? await serviceWith(settings) : svc;
      const c = track(await openClient({ http: s.url, ws: s.wsUrl, name: 'resumer' }));
      await writes(5);
      await waitFor(() => c.received.length === 5, { message: 'the first five changes' });
      await c.disconnect();
      const cursor = c.cursor as string;
      await writes(40);
      const missed = await committedAfter(db.sql, cursor);
      expect(missed.length).toBeGreaterThanOrEqual(35);
      const history = await readHistory(db.sql);
      await waitFor(
        () => {
          const head = parseCursor(s.service.feed.state.head);
          return head && history.every((h) => has(head, h.xid, h.seq));
        },
        { message: 'the feed has read every write' },
      );
      await c.connect();
      await waitFor(() => c.received.length >= 5 + missed.length, { message: 'the missed changes' });
      expect(c.received.filter((r) => r.session === 2).map((r) => r.key)).toEqual(missed);
      await writes(5);
      expect(await settle(db.sql, [c])).toEqual(cleanReports([c]));
    });
  }

  it('resets a cursor whose changes were pruned, and the client recovers from a fresh snapshot', async () => {
    const own = await createTestDatabase();
    databases.push(own);
    await insertOrders(own.sql, 10);
    const s = await serviceWith({ FEED_MEMORY_CHANGES: '0' }, own.url);
    const c = track(await openClient({ http: s.url, ws: s.wsUrl, name: 'expired', autoResync: true }));
    await own.sql.query("UPDATE orders SET notes = 'seen' WHERE id = 1");
    await waitFor(() => c.received.length === 1, { message: 'the first change' });
    await c.disconnect();
    await own.sql.query("UPDATE orders SET notes = 'missed' WHERE id <= 5");
    await waitFor(async () => (await readHistory(own.sql)).length === 16);
    // A retention pass with a tiny limit prunes past the client's cursor.
    expect(await pruneChanges(s.service.db, { maxAgeHours: 0, maxRows: 1 })).toBeGreaterThan(0);
    await c.connect();
    // Answered at once, or (when this instance had not read the pruned changes yet either) as soon as
    // its feed finds the gap: never a silent one.
    await waitFor(() => c.resets.length === 1, { message: 'a reset' });
    expect(c.resets).toMatchObject([{ type: 'reset', reason: 'cursor-expired' }]);
    await waitFor(() => c.closes.some((x) => x.code === 4001), { message: 'closed with 4001' });
    await waitFor(() => c.epochs.length === 2 && c.connected, { message: 'resynced from a new snapshot' });
    await c.settledResync();
    await own.sql.query("UPDATE orders SET notes = 'after the reset' WHERE id = 6");
    expect(await settle(own.sql, [c])).toEqual(cleanReports([c]));
    expect(c.view.get(3)?.order.notes).toBe('missed');
  });

  it('resets a malformed cursor and a cursor from the future', async () => {
    const next = Number((await db.sql.query('SELECT txid_snapshot_xmax(txid_current_snapshot()) AS x')).rows[0].x);
    const cases = [
      ['garbage', 'cursor-malformed'],
      ['12-', 'cursor-malformed'],
      ['5:3:', 'cursor-malformed'],
      [`${next + 1_000_000}-1`, 'cursor-unknown'],
      [`${next + 1000}:${next + 2000}:`, 'cursor-unknown'],
    ] as const;
    for (const [cursor, reason] of cases) {
      const c = track(new TestFeedClient({ http: svc.url, ws: svc.wsUrl, name: cursor }));
      c.cursor = cursor;
      await c.connect();
      expect(c.resets, cursor).toMatchObject([{ type: 'reset', reason }]);
      expect(await c.waitClosed(), cursor).toBe(4001);
      expect(c.hellos, cursor).toEqual([]);
    }
  });
});

describe('snapshot then stream', () => {
  it('snapshot plus stream equals the table, with nothing from the snapshot delivered again, while writes run', async () => {
    const writer = steadyWriter(db.sql, { perSecond: 150, durationMs: 3000, workers: 3 });
    const all: TestFeedClient[] = [];
    for (let i = 0; i < 4; i++) {
      all.push(track(await openClient({ http: svc.url, ws: svc.wsUrl, name: `snap-${i}` })));
      await waitFor(() => writer.writes >= (i + 1) * 80, { message: 'writes between snapshots' });
    }
    // One of them drops and resumes in the middle of it all.
    await all[1]?.disconnect();
    await waitFor(() => writer.writes >= 400, { message: 'writes while away' });
    await all[1]?.connect();
    await writer.done;
    expect(await settle(db.sql, all)).toEqual(cleanReports(all));
  });

  it('resumes exactly after receiving a change of a transaction the snapshot saw in progress', async () => {
    const ids = await insertOrders(db.sql, 3);
    const inProgress = new pg.Client({ connectionString: db.url });
    open.push(inProgress);
    await inProgress.connect();
    await inProgress.query('BEGIN');
    await inProgress.query("UPDATE orders SET notes = 'in progress at snapshot time' WHERE id = $1", [ids[0]]);
    // Committed after the in-progress transaction took its xid, but before the snapshot: in the snapshot.
    await db.sql.query("UPDATE orders SET notes = 'in the snapshot' WHERE id = $1", [ids[1]]);
    const c = track(await openClient({ http: svc.url, ws: svc.wsUrl, name: 'snapshot-floor' }));
    expect(c.cursor).toMatch(/^\d+:\d+:\d+/);
    await inProgress.query('COMMIT');
    await waitFor(() => c.received.length === 1, { message: 'the in-progress change' });
    await c.disconnect();
    await db.sql.query("UPDATE orders SET notes = 'after the resume' WHERE id = $1", [ids[2]]);
    await c.connect();
    expect(await settle(db.sql, [c])).toEqual(cleanReports([c]));
    expect(c.received.map((r) => r.id)).toEqual([ids[0], ids[2]]);
  });
});
