import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { isClean, openClient, settle, type TestFeedClient } from '../helpers/feed-client.js';
import { type RunningService, startService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { insertOrders, randomWrite } from '../helpers/writes.js';

/**
 * Random interleavings of writes (plain, and out-of-order commits), clients dropping and resuming, and
 * the listener's backend being killed: when things settle, every client shows exactly the table, having
 * received every change once, in feed order.
 */
let db: TestDatabase;
let svc: RunningService;

type Action =
  | { kind: 'writes'; n: number }
  | { kind: 'late-commit' }
  | { kind: 'disconnect'; client: number }
  | { kind: 'resume'; client: number }
  | { kind: 'kill-listener' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('writes' as const), n: fc.integer({ min: 1, max: 15 }) }), weight: 4 },
  { arbitrary: fc.constant({ kind: 'late-commit' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('disconnect' as const), client: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('resume' as const), client: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'kill-listener' as const }), weight: 1 },
);

async function lateCommit(): Promise<void> {
  const a = new pg.Client({ connectionString: db.url });
  a.on('error', () => undefined);
  await a.connect();
  try {
    await a.query('BEGIN');
    await a.query("INSERT INTO orders (customer_name, product_name) VALUES ('Late', 'Commit')");
    await randomWrite(db.sql);
    await a.query('COMMIT');
  } finally {
    await a.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  await insertOrders(db.sql, 60);
  svc = await startService(db.url, { LISTENER_BACKOFF_MIN_MS: '20', LISTENER_BACKOFF_MAX_MS: '200', FEED_POLL_MS: '500' });
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

it('every client ends equal to the table, whatever the interleaving', { timeout: 40_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 3, maxLength: 14 }), fc.integer(), async (actions, seed) => {
      let state = seed;
      const random = () => {
        state = (Math.imul(state, 1_103_515_245) + 12_345) | 0;
        return ((state >>> 8) & 0xffff) / 0x10000;
      };
      const clients: TestFeedClient[] = [];
      try {
        for (let i = 0; i < 3; i++) clients.push(await openClient({ http: svc.url, ws: svc.wsUrl, name: `client-${i}`, autoResync: true }));
        for (const a of actions) {
          if (a.kind === 'writes') for (let i = 0; i < a.n; i++) await randomWrite(db.sql, random);
          else if (a.kind === 'late-commit') await lateCommit();
          else if (a.kind === 'disconnect') await clients[a.client]?.disconnect();
          else if (a.kind === 'resume') {
            const c = clients[a.client] as TestFeedClient;
            if (!c.connected) await c.connect();
          } else {
            await db.sql.query(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orders-listener' AND datname = current_database()",
            );
          }
        }
        for (const c of clients) if (!c.connected) await c.connect();
        await waitFor(() => clients.every((c) => c.connected), { message: 'every client connected' });
        const reports = await settle(db.sql, clients, 10_000);
        expect(reports.filter((r) => !isClean(r))).toEqual([]);
        for (const c of clients) expect(c.resets).toEqual([]);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    }),
    { numRuns: 40, endOnFailure: true },
  );
});
