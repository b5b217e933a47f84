import { describe, expect, it } from 'vitest';
import { checkHttp, checkResources, judgeClient, violationsFrom } from '../soak/checker.js';
import type { SoakClient } from '../soak/clients.js';
import type { FaultRecord } from '../soak/faults.js';
import type { Order } from '../src/contract/protocol.js';
import { type LoggedChange, TestFeedClient } from './helpers/feed-client.js';

/**
 * The soak's verdict is only as good as its checker, so the checker is tested on histories made up here
 * (no database, no sockets): a clean one passes, and one with a change dropped, one received twice and
 * one nobody committed fails with exactly those three violations, each naming the client, the order and
 * the fault before it. Orders 1-3, one transaction per change, xids from 100; every client starts from
 * the cursor `100:100:` (it has everything before xid 100).
 */
const order = (id: number, version: number): Order => ({ id, version, customer_name: `C${id}`, product_name: 'P' }) as unknown as Order;

// order 1: v1 (xid 100), v2 (101), v3 (102); order 2: v1 (103); order 3: v1 (104).
const history: LoggedChange[] = [
  [1, 1],
  [1, 2],
  [1, 3],
  [2, 1],
  [3, 1],
].map(([id, version], i) => ({ key: `${id}:${version}`, xid: 100 + i, seq: 1, id: id as number, version: version as number }));
const table = new Map<number, Order>([
  [1, order(1, 3)],
  [2, order(2, 1)],
  [3, order(3, 1)],
]);

/** A client that received `keys` (in this order) and shows `table` (so only the stream itself is judged). */
function fakeClient(name: string, keys: string[], leftAt?: number): SoakClient {
  const client = new TestFeedClient({ http: 'http://127.0.0.1:1', ws: 'ws://127.0.0.1:1/ws', name });
  client.epochs.push({
    base: '100:100:',
    received: keys.map((key) => {
      const [id, version] = key.split(':').map(Number) as [number, number];
      return { key, op: version === 1 ? 'insert' : 'update', id, version, session: 1 };
    }),
  });
  for (const [id, o] of table) client.view.set(id, { version: o.version, deleted: false, order: o });
  return {
    client,
    role: 'steady',
    joinedAt: 0,
    reconnects: 0,
    freshSnapshots: 0,
    connectFailures: 0,
    paused: false,
    away: false,
    ...(leftAt === undefined ? {} : { leftAt }),
  };
}

const faults: FaultRecord[] = [{ kind: 'pg-restart-immediate', at: 1000, endedAt: 3000, recoveredAt: 4000, detail: 'down 1500 ms' }];
// When each change was written, ms since the start (the soak reads these from the change log).
const times = new Map(history.map((h, i) => [h.key, 500 + i * 1000]));
times.set('9:1', 2500);

describe('the soak checker', () => {
  it('passes a clean history', () => {
    const reports = [fakeClient('clean', ['1:1', '1:2', '1:3', '2:1', '3:1'])].map((c) => judgeClient(c, history, table));
    expect(violationsFrom(reports, times, faults)).toEqual([]);
  });

  it('reports exactly one lost, one duplicated and one unexpected change, with the client, the order and the fault before it', () => {
    // 1:2 dropped (1:3 still arrives, so the view ends right), 3:1 twice, 9:1 from a transaction that never committed.
    const buggy = fakeClient('buggy', ['1:1', '1:3', '2:1', '3:1', '3:1', '9:1']);
    const violations = violationsFrom([judgeClient(buggy, history, table)], times, faults);
    expect(violations.map(({ kind, client, orderId, detail }) => ({ kind, client, orderId, detail }))).toEqual([
      { kind: 'lost', client: 'buggy', orderId: 1, detail: '1:2' },
      { kind: 'duplicated', client: 'buggy', orderId: 3, detail: '3:1' },
      { kind: 'unknown', client: 'buggy', orderId: 9, detail: '9:1' },
    ]);
    expect(violations.find((v) => v.kind === 'lost')?.precedingFault).toBe('pg-restart-immediate at 1.0 s (down 1500 ms)');
    expect(violations.find((v) => v.kind === 'unknown')?.at).toBe(2500);
  });

  it('reports a change missing from the view and an interleaved transaction', () => {
    const c = fakeClient('stale', ['1:1', '1:2', '1:3', '2:1', '3:1']);
    c.client.view.set(2, { version: 1, deleted: true, order: order(2, 1) });
    const interleaved = fakeClient('interleaved', ['1:1', '1:2', '1:3', '2:1', '3:1']);
    // The transaction of 1:1 (xid 100) comes back after another one had started.
    interleaved.client.epochs[0]?.received.push({ key: '1:1', op: 'insert', id: 1, version: 1, session: 1 });
    const kinds = violationsFrom([judgeClient(c, history, table), judgeClient(interleaved, history, table)], times, faults).map(
      (v) => `${v.client} ${v.kind} ${v.orderId}`,
    );
    expect(kinds).toEqual(['stale view-mismatch 2', 'interleaved duplicated 1', 'interleaved interleaved 1']);
  });

  it('does not count what a client that left early never received as lost', () => {
    const left = fakeClient('left', ['1:1', '1:2'], 1500);
    expect(violationsFrom([judgeClient(left, history, table)], times, faults)).toEqual([]);
    const stayed = fakeClient('stayed', ['1:1', '1:2']);
    expect(violationsFrom([judgeClient(stayed, history, table)], times, faults).map((v) => v.detail)).toEqual(['1:3', '2:1', '3:1']);
  });

  it('allows a 503 inside a database fault only, and never a 502', () => {
    const { violations, byStatus } = checkHttp(
      [
        { at: 2000, status: 503, method: 'POST', path: '/orders', detail: 'database-unavailable' },
        { at: 20_000, status: 503, method: 'POST', path: '/orders', detail: 'database-unavailable' },
        { at: 2100, status: 502, method: 'PATCH', path: '/orders/1', detail: 'Bad Gateway' },
      ],
      faults,
    );
    expect(byStatus).toEqual({ 502: 1, 503: 2 });
    expect(violations.map((v) => `${v.kind} at ${v.at}`)).toEqual(['http-503 at 20000', 'http-502 at 2100']);
  });

  it('judges descriptors besides WebSocket clients, and only series long enough', () => {
    const thresholds = { rssMiBPerMin: 1, fdsPerMin: 2, minSpanSec: 300, poolMax: 10, instances: 1 };
    const end = { 'orders-listener/idle': 1, 'orders-api/idle': 2 };
    const slope = (series: string, spanSec: number, fdsPerMin: number, otherFdsPerMin: number, rssMiBPerMin = 0) => ({
      series,
      samples: 40,
      spanSec,
      rssMiBPerMin,
      fdsPerMin,
      otherFdsPerMin,
    });
    const found = checkResources(
      [
        // A restarted instance gaining reconnecting clients: its descriptors grow, the others do not.
        slope('b pid 1', 430, 8.9, -0.5),
        // A leak: descriptors grow with no clients to explain them.
        slope('a pid 2', 430, 3, 3),
        // Growing memory.
        slope('steady pid 3', 930, 0, 0, 1.5),
        // Too short to judge.
        slope('a pid 4', 60, 50, 50, 50),
      ],
      end,
      thresholds,
    );
    expect(found.map((v) => `${v.kind} ${v.detail.split(':')[0]}`)).toEqual(['fd-growth a pid 2', 'rss-growth steady pid 3']);
  });
});
