import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ServerMessage } from '../../src/contract/protocol.js';
import { has, MAX_CURSOR_LENGTH, MAX_XIP, parseCursor } from '../../src/feed/cursor.js';
import { pruneChanges } from '../../src/feed/retention.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanReports, openClient, readHistory, settle, TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { insertOrders, steadyWriter } from '../helpers/writes.js';

/**
 * Issue 11, the bounded feed: whole transactions however large (guarantee 3), cursors from the previous
 * release (guarantee 4), hostile cursors (guarantees 6 and 9a). Stalled catch-ups (9b) are in
 * stalled-catch-ups.test.ts, which runs the service as a process of its own to measure its memory.
 */
const clients: TestFeedClient[] = [];
const sockets: WebSocket[] = [];
const services: RunningService[] = [];
const databases: TestDatabase[] = [];
const open: pg.Client[] = [];

const track = (c: TestFeedClient) => {
  clients.push(c);
  return c;
};
const serviceOn = async (db: TestDatabase, settings: Record<string, string> = {}) => {
  const s = await startService(db.url, settings);
  services.push(s);
  return s;
};
const database = async () => {
  const d = await createTestDatabase();
  databases.push(d);
  return d;
};
const connection = async (db: TestDatabase) => {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
};
const xidOf = async (c: pg.Client) => Number((await c.query<{ x: string }>('SELECT txid_current() AS x')).rows[0]?.x);

/** Waits until the service's feed has handed out every committed change (so a resume is a catch-up). */
async function feedHasRead(db: TestDatabase, s: RunningService): Promise<void> {
  const history = await readHistory(db.sql);
  await waitFor(
    () => {
      const head = parseCursor(s.service.feed.state.head);
      return head && history.every((h) => has(head, h.xid, h.seq));
    },
    { message: 'the feed has read every write' },
  );
}

type Hook = (message: ServerMessage) => void;
/** Runs `hook` after the client has handled each message, in order (TestFeedClient has no event of its own). */
function onEveryMessage(c: TestFeedClient, hook: Hook): void {
  const inner = c as unknown as { onMessage(m: ServerMessage, session: number): void };
  const original = inner.onMessage.bind(c);
  inner.onMessage = (m, session) => {
    original(m, session);
    hook(m);
  };
}

/**
 * Cuts the client's connection at the first `more: true` message (in the middle of a large transaction)
 * and remembers the last cursor it was given, `more` or not: the one a client keeps to resume.
 */
function cutInsideTransaction(c: TestFeedClient): { readonly last: string | undefined; readonly cut: boolean } {
  const state = { last: undefined as string | undefined, cut: false };
  onEveryMessage(c, (m) => {
    if (m.type !== 'changes') return;
    state.last = m.cursor;
    if (m.more && !state.cut) {
      state.cut = true;
      c.socket?.terminate();
    }
  });
  return state;
}

/**
 * The large transaction reached the client in one run (no other change between its pieces, across a
 * resume too), and every message carrying it but the last says `more`, ending inside it.
 */
function expectWhole(c: TestFeedClient, big: Set<string>, minMessages: number): void {
  const keys = c.epochs.flatMap((e) => e.received.map((r) => r.key));
  const at = keys.flatMap((k, i) => (big.has(k) ? [i] : []));
  expect(at.length, `${c.name}: changes of the large transaction received`).toBe(big.size);
  expect((at[at.length - 1] as number) - (at[0] as number) + 1, `${c.name}: received in one run`).toBe(big.size);
  const carrying = c.messages.filter((m) => m.keys.some((k) => big.has(k)));
  expect(carrying.length, `${c.name}: messages carrying it`).toBeGreaterThanOrEqual(minMessages);
  expect(
    carrying.map((m) => m.more),
    `${c.name}: more on every message but the last`,
  ).toEqual([...Array(carrying.length - 1).fill(true), false]);
  for (const m of carrying.slice(0, -1))
    expect(big.has(m.keys[m.keys.length - 1] as string), `${c.name}: a more message ends inside it`).toBe(true);
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of sockets.splice(0)) s.terminate();
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => undefined)));
});

afterAll(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(databases.splice(0).map((d) => d.drop()));
});

describe('guarantee 3: a transaction larger than a read arrives whole, in pieces saying more', () => {
  it('live, from memory and from the log, with small transactions committing around it, and across a cut in its middle', {
    timeout: 60_000,
  }, async () => {
    const db = await database();
    await insertOrders(db.sql, 20);
    const live = await serviceOn(db); // FEED_BATCH_SIZE 1000: 2,500 rows are three reads
    const small = await serviceOn(db, { FEED_BATCH_SIZE: '300' }); // 9 reads, coalesced into ~256 KiB messages
    const fromLog = await serviceOn(db, { FEED_MEMORY_CHANGES: '0' }); // catch-up pages of 1000 rows

    const watchers = [
      track(await openClient({ http: live.url, ws: live.wsUrl, name: 'live-a' })),
      track(await openClient({ http: live.url, ws: live.wsUrl, name: 'live-b' })),
      track(await openClient({ http: small.url, ws: small.wsUrl, name: 'batch-300' })),
    ];
    const liveCut = track(await openClient({ http: live.url, ws: live.wsUrl, name: 'live-cut' }));
    const liveCutState = cutInsideTransaction(liveCut);
    // Catch-up clients: snapshot now, connect once everything has happened (FEED_MEMORY_CHANGES=0: the log).
    const behind = track(new TestFeedClient({ http: fromLog.url, ws: fromLog.wsUrl, name: 'log-catch-up' }));
    await behind.loadSnapshot();
    const behindCut = track(new TestFeedClient({ http: fromLog.url, ws: fromLog.wsUrl, name: 'log-cut' }));
    await behindCut.loadSnapshot();
    const behindCutState = cutInsideTransaction(behindCut);

    const writer = steadyWriter(db.sql, { perSecond: 100, durationMs: 4000, workers: 2 });
    // An older transaction that commits after the large one, and a younger one that commits before it.
    const older = await connection(db);
    await older.query('BEGIN');
    await xidOf(older);
    await older.query("INSERT INTO orders (customer_name, product_name) VALUES ('Older', 'Commits after the large one')");
    const large = await connection(db);
    await large.query('BEGIN');
    const xid = await xidOf(large);
    await large.query(
      `INSERT INTO orders (customer_name, product_name, notes)
       SELECT 'Bulk ' || g, 'Pallet', 'one of 2,500 in one transaction' FROM generate_series(1, 2500) g`,
    );
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Younger', 'Commits before the large one')");
    await large.query('COMMIT');
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Right after', 'the large one')");
    await older.query('COMMIT');
    await writer.done;

    const big = new Set((await readHistory(db.sql)).filter((h) => h.xid === xid).map((h) => h.key));
    expect(big.size).toBe(2500);

    // The live client cut in the middle resumes with the cursor it was last given (it names a partial).
    await waitFor(() => liveCutState.cut && liveCut.socket?.readyState === WebSocket.CLOSED, { message: 'live-cut cut' });
    const liveResume = liveCutState.last as string;
    // (Besides any small transaction still open from its summary: feed/summary.ts.)
    expect(parseCursor(liveResume)?.partials.map((p) => p.xid)).toContain(xid);
    liveCut.cursor = liveResume;
    await liveCut.connect();

    await feedHasRead(db, fromLog);
    await behind.connect();
    await behindCut.connect();
    await waitFor(() => behindCutState.cut && behindCut.socket?.readyState === WebSocket.CLOSED, { message: 'log-cut cut' });
    const logResume = behindCutState.last as string;
    expect(parseCursor(logResume)?.partials.map((p) => p.xid)).toContain(xid);
    behindCut.cursor = logResume;
    await behindCut.connect();

    const all = [...watchers, liveCut, behind, behindCut];
    expect(await settle(db.sql, all, 30_000)).toEqual(cleanReports(all));
    for (const c of [...watchers.slice(0, 2), liveCut, behind, behindCut]) expectWhole(c, big, 3);
    expectWhole(watchers[2] as TestFeedClient, big, 2);
    // The resumed clients got the rest of it once: the checker above saw no duplicate, and the second
    // session starts inside the large transaction.
    for (const c of [liveCut, behindCut]) {
      const second = c.received.filter((r) => r.session === 2);
      expect(big.has(second[0]?.key as string), `${c.name} resumes inside the large transaction`).toBe(true);
      expect(c.received.filter((r) => r.session === 1 && big.has(r.key)).length, `${c.name} had part of it`).toBeGreaterThan(0);
    }
  });
});

/**
 * A transaction whose size is an exact multiple of the read size: its last piece fills a read. Reads
 * look one row past the page, so that piece already says it is the last (it once said `more` and no
 * message ever ended it). Live (FEED_BATCH_SIZE) and catch-up from the log (pages of 1000) alike.
 */
describe('guarantee 3: a transaction of exactly k reads', () => {
  const exactMultiple = async (settings: Record<string, string>, rows: number, resume: boolean) => {
    const db = await database();
    await insertOrders(db.sql, 5);
    const s = await serviceOn(db, settings);
    const c = track(new TestFeedClient({ http: s.url, ws: s.wsUrl, name: 'exact' }));
    await c.loadSnapshot();
    if (!resume) await c.connect();
    const large = await connection(db);
    await large.query('BEGIN');
    const xid = await xidOf(large);
    await large.query(`INSERT INTO orders (customer_name, product_name) SELECT 'Bulk', 'Pallet' FROM generate_series(1, ${rows})`);
    await large.query('COMMIT');
    await insertOrders(db.sql, 1, 'the next transaction');
    if (resume) {
      await feedHasRead(db, s);
      await c.connect();
    }
    const big = new Set((await readHistory(db.sql)).filter((h) => h.xid === xid).map((h) => h.key));
    await waitFor(() => c.received.length === rows + 1, { message: 'both transactions' });
    const carrying = c.messages.filter((m) => m.keys.some((k) => big.has(k)));
    // The last message carrying it closes it (reads look one row past the page to know).
    expect(carrying.at(-1)?.more).toBe(false);
  };

  it('live: 200 rows with FEED_BATCH_SIZE=100 end with a message without more', async () => {
    await exactMultiple({ FEED_BATCH_SIZE: '100' }, 200, false);
  });

  it('catch-up from the log: 2,000 rows (two pages) end with a message without more', async () => {
    await exactMultiple({ FEED_MEMORY_CHANGES: '0' }, 2000, true);
  });
});

/**
 * What a cursor of the previous release meant (its src/feed/cursor.ts `hasChange`), written out here
 * independently of the parser under test: `X-Q` has every change up to (X, Q) in (xid, seq) order (it
 * was handed out only once every lower transaction had ended); `X-Q:xmax:xip` has that plus what the
 * GET /orders snapshot `…:xmax:xip` saw.
 */
function oldHas(text: string, xid: number, seq: number): boolean {
  const m = /^(\d+)-(\d+)(?::(\d+):([\d,]*))?$/.exec(text);
  if (!m) throw new Error(`not an old cursor: ${text}`);
  const [X, Q] = [Number(m[1]), Number(m[2])];
  if (xid < X || (xid === X && seq <= Q)) return true;
  if (m[3] === undefined) return false;
  const xip = new Set((m[4] as string).split(',').filter(Boolean).map(Number));
  return xid < Number(m[3]) && !xip.has(xid);
}

describe('guarantee 4: cursors from the previous release', () => {
  it('resume without loss or duplicate, from memory and from the log, or get reset once pruned', { timeout: 40_000 }, async () => {
    const db = await database();
    await insertOrders(db.sql, 40);
    const mem = await serviceOn(db);
    const log = await serviceOn(db, { FEED_MEMORY_CHANGES: '0' });
    const update = (from: number, to: number, notes: string) =>
      db.sql.query('UPDATE orders SET notes = $3 WHERE id BETWEEN $1 AND $2', [from, to, notes]);
    for (let i = 0; i < 4; i++) await update(i * 5 + 1, i * 5 + 5, `batch ${i}`);

    // The old `X-Q:xmax:xip` shape: a GET /orders snapshot taken while T and U ran, then T's first change.
    const t = await connection(db);
    await t.query('BEGIN');
    const tXid = await xidOf(t);
    await t.query("UPDATE orders SET notes = 'T' WHERE id BETWEEN 21 AND 23");
    await update(24, 24, 'committed inside the snapshot');
    const u = await connection(db);
    await u.query('BEGIN');
    const uXid = await xidOf(u);
    await u.query("UPDATE orders SET notes = 'U' WHERE id = 25");
    await update(26, 26, 'committed after U began, inside the snapshot'); // so U sits below xmax, in xip
    const snap = (await db.sql.query<{ s: string }>('SELECT txid_current_snapshot()::text AS s')).rows[0]?.s as string;
    const [, , snapXmax, snapXip] = /^(\d+):(\d+):([\d,]*)$/.exec(snap) as RegExpExecArray;
    expect((snapXip as string).split(',').map(Number)).toEqual(expect.arrayContaining([tXid, uXid]));
    await t.query('COMMIT');
    await u.query('COMMIT');
    for (let i = 5; i < 8; i++) await update(i * 5 + 1, i * 5 + 5, `batch ${i}`);

    const history = await readHistory(db.sql);
    const txns = [...new Set(history.map((h) => h.xid))];
    const changesOf = (x: number) => history.filter((h) => h.xid === x);
    const [, second, third] = txns.slice(1) as number[]; // after the 40 inserts: the 5-row batches
    const tFirst = changesOf(tXid)[0]?.seq as number;
    const xipFromT = (snapXip as string)
      .split(',')
      .map(Number)
      .filter((x) => x >= tXid);
    const legacy = {
      'end of a transaction': `${second}-${changesOf(second as number).at(-1)?.seq}`,
      'inside a transaction': `${third}-${changesOf(third as number)[1]?.seq}`,
      'before a transaction': `${third}-0`,
      'snapshot, then a change of a transaction it saw running': `${tXid}-${tFirst}:${snapXmax}:${xipFromT.join(',')}`,
    };
    await feedHasRead(db, mem);
    await feedHasRead(db, log);

    const resumed: { c: TestFeedClient; text: string }[] = [];
    for (const [name, text] of Object.entries(legacy)) {
      for (const s of [mem, log]) {
        const c = track(new TestFeedClient({ http: s.url, ws: s.wsUrl, name: `${name} (${s === mem ? 'memory' : 'log'})` }));
        c.cursor = text;
        await c.connect();
        expect(c.resets, c.name).toEqual([]);
        resumed.push({ c, text });
      }
    }
    // And the stream goes on past them.
    await update(1, 2, 'after the resumes');
    const final = await readHistory(db.sql);
    for (const { c, text } of resumed) {
      const expected = final.filter((h) => !oldHas(text, h.xid, h.seq)).map((h) => h.key);
      expect(expected.length, c.name).toBeGreaterThan(2);
      await waitFor(() => c.received.length >= expected.length, { message: `${c.name}: what it lacks` }).catch(() => undefined);
      await sleep(100);
      const got = c.received.map((r) => r.key);
      expect([...got].sort(), `${c.name} from ${text}`).toEqual([...expected].sort());
      expect(new Set(got).size, `${c.name}: no duplicate`).toBe(got.length);
    }

    // Once the changes after it are pruned from the log, an old cursor is reset, not resumed with a gap;
    // an instance that still holds them in memory may serve them instead, exactly.
    expect(await pruneChanges(log.service.db, { maxAgeHours: 0, maxRows: 1 })).toBeGreaterThan(0);
    const text = legacy['inside a transaction'];
    const fromLog = track(new TestFeedClient({ http: log.url, ws: log.wsUrl, name: 'pruned (log)' }));
    fromLog.cursor = text;
    await fromLog.connect();
    expect(fromLog.resets).toMatchObject([{ type: 'reset', reason: 'cursor-expired' }]);
    const fromMemory = track(new TestFeedClient({ http: mem.url, ws: mem.wsUrl, name: 'pruned (memory)' }));
    fromMemory.cursor = text;
    await fromMemory.connect();
    expect(fromMemory.resets).toEqual([]);
    const expected = final.filter((h) => !oldHas(text, h.xid, h.seq)).map((h) => h.key);
    await waitFor(() => fromMemory.received.length >= expected.length, { message: 'served from memory' });
    expect(fromMemory.received.map((r) => r.key).sort()).toEqual([...expected].sort());
  });
});

/** A socket with `?after=` exactly as given (commas and colons are legal in a query, left unescaped). */
function rawClient(wsUrl: string, after: string) {
  const ws = new WebSocket(`${wsUrl}?after=${after}`, { perMessageDeflate: false });
  sockets.push(ws);
  const state = {
    ws,
    keys: [] as string[],
    first: undefined as ServerMessage | undefined,
    status: 0,
    closeCode: 0,
  };
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as ServerMessage;
    state.first ??= m;
    if (m.type === 'changes') for (const c of m.changes) state.keys.push(`${c.order.id}:${c.order.version}`);
  });
  ws.on('unexpected-response', (_req, res) => {
    state.status = res.statusCode ?? -1;
    res.resume();
  });
  ws.on('close', (code) => {
    state.closeCode = code;
  });
  ws.on('error', () => undefined);
  return state;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

describe('guarantees 6 and 9a: hostile cursors', () => {
  let db: TestDatabase;
  let svc: RunningService;
  /** 2 × MAX_XIP committed transactions of one change each; the crafted cursor lacks every other one. */
  let crafted: string;
  let lacking: Set<string>;

  beforeAll(async () => {
    db = await database();
    await insertOrders(db.sql, 10);
    svc = await serviceOn(db);
    await db.sql.query(`DO $$ BEGIN
      FOR i IN 1..${2 * MAX_XIP} LOOP
        INSERT INTO orders (customer_name, product_name) VALUES ('One per transaction', 'xid ' || i);
        COMMIT;
      END LOOP; END $$`);
    const history = await readHistory(db.sql);
    const xids = [...new Set(history.map((h) => h.xid))].slice(-2 * MAX_XIP);
    const xip = xids.filter((_, i) => i % 2 === 0);
    crafted = `${xip[0]}:${(xids.at(-1) as number) + 1}:${xip.join(',')}`;
    const inXip = new Set(xip);
    lacking = new Set(history.filter((h) => inXip.has(h.xid)).map((h) => h.key));
    expect(lacking.size).toBe(MAX_XIP);
    await feedHasRead(db, svc);
  });

  it('resets a cursor over MAX_CURSOR_LENGTH or with more than MAX_XIP in-progress transactions (cursor-malformed)', async () => {
    const x = Number((await db.sql.query<{ x: string }>('SELECT txid_snapshot_xmin(txid_current_snapshot()) AS x')).rows[0]?.x);
    const repeated = (n: number) =>
      `${x - 1}:${x}:${Array(n)
        .fill(x - 1)
        .join(',')}`;
    const tooMany = rawClient(svc.wsUrl, repeated(MAX_XIP + 1));
    const justEnough = rawClient(svc.wsUrl, repeated(MAX_XIP));
    // Within MAX_XIP and otherwise valid (xids zero-padded to 16 digits), just over the length limit: it
    // still fits Node's 16 KiB request head, so the hub's own check is what refuses it.
    const entry = String(x - 1).padStart(16, '0');
    let over = `${x - 1}:${x}:${entry}`;
    while (over.length <= MAX_CURSOR_LENGTH) over += `,${entry}`;
    const tooLong = rawClient(svc.wsUrl, over);
    await waitFor(() => tooMany.first && justEnough.first && (tooLong.first || tooLong.status), { message: 'all answered' });
    expect(tooMany.first).toMatchObject({ type: 'reset', reason: 'cursor-malformed' });
    expect(justEnough.first).toMatchObject({ type: 'hello' });
    expect(tooLong.status).toBe(0);
    expect(tooLong.first).toMatchObject({ type: 'reset', reason: 'cursor-malformed' });
    await waitFor(() => tooMany.closeCode === 4001 && tooLong.closeCode === 4001, { message: 'closed with 4001' });
  });

  it('MAX_XIP in-progress xids on 10 sockets reconnecting under 50 writes/s: /healthz stays fast, each gets exactly what it lacks', {
    timeout: 40_000,
  }, async () => {
    console.log(`crafted cursor: ${crafted.length} characters, ${lacking.size} transactions it lacks`);
    const latencies: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t0 = performance.now();
        const res = await fetch(`${svc.url}/healthz`);
        await res.text();
        latencies.push(performance.now() - t0);
        await sleep(20);
      }
    })();
    const loop = monitorEventLoopDelay({ resolution: 10 });

    // Baseline: the writes alone.
    const writer = steadyWriter(db.sql, { perSecond: 50, durationMs: 9000, workers: 2 });
    await sleep(2000);
    const baseline = [...latencies].sort((a, b) => a - b);
    latencies.length = 0;
    loop.enable();

    // 10 sockets resume with the crafted cursor, get what they lack, hang up and do it again (≤ 2/s each).
    const until = Date.now() + 6000;
    let sessions = 0;
    const problems: string[] = [];
    const hostile = async (i: number) => {
      while (Date.now() < until) {
        const c = rawClient(svc.wsUrl, crafted);
        const started = Date.now();
        try {
          await waitFor(() => [...lacking].every((k) => c.keys.includes(k)) || c.closeCode !== 0, { timeout: 10_000, interval: 50 });
        } catch {
          problems.push(`socket ${i}: only ${c.keys.length} changes after 10 s`);
        }
        if (c.first?.type !== 'hello') problems.push(`socket ${i}: first message ${JSON.stringify(c.first).slice(0, 100)}`);
        if (new Set(c.keys).size !== c.keys.length) problems.push(`socket ${i}: duplicates`);
        sessions++;
        c.ws.close();
        await sleep(Math.max(0, 500 - (Date.now() - started)));
      }
    };
    await Promise.all(Array.from({ length: 10 }, (_, i) => hostile(i)));
    loop.disable();
    const during = [...latencies].sort((a, b) => a - b);

    // Ten more stay connected through the end of the writes: exactly what they lack, live writes included.
    const stayers = Array.from({ length: 10 }, () => rawClient(svc.wsUrl, crafted));
    await writer.done;
    sampling = false;
    await sampler;
    const at = parseCursor(crafted);
    if (!at) throw new Error('crafted cursor refused by the parser');
    const expected = (await readHistory(db.sql)).filter((h) => !has(at, h.xid, h.seq)).map((h) => h.key);
    expect(expected.length).toBeGreaterThan(MAX_XIP + 200);
    for (const c of stayers) {
      await waitFor(() => c.keys.length >= expected.length, { timeout: 10_000, message: 'a staying socket has everything' }).catch(
        () => undefined,
      );
      expect([...c.keys].sort()).toEqual([...expected].sort());
      expect(new Set(c.keys).size).toBe(c.keys.length);
    }

    const ms = (n: number) => `${n.toFixed(1)} ms`;
    console.log(
      `hostile cursors: ${sessions} sessions of ${MAX_XIP} lacking transactions on 10 sockets in 6 s, ${writer.writes} writes;\n` +
        `  /healthz baseline p50 ${ms(percentile(baseline, 0.5))} p99 ${ms(percentile(baseline, 0.99))} (${baseline.length} samples)\n` +
        `  /healthz during   p50 ${ms(percentile(during, 0.5))} p99 ${ms(percentile(during, 0.99))} max ${ms(during.at(-1) ?? 0)} (${during.length} samples)\n` +
        `  event-loop delay during p99 ${ms(loop.percentile(99) / 1e6)} max ${ms(loop.max / 1e6)}`,
    );
    expect(problems).toEqual([]);
    expect(sessions).toBeGreaterThanOrEqual(40);
    expect(percentile(during, 0.99)).toBeLessThan(200);
  });
});
