import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ORDER_STATUSES } from '../../src/contract/statuses.js';
import { type Filter, parseFilter } from '../../src/filter/filter.js';
import { matches } from '../../src/filter/match.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type RunningService, startService } from '../helpers/service.js';
import { settled, ViewClient } from '../helpers/view-client.js';

/**
 * Filtered streams and live totals, for random filters and random change sequences (inserts, status and
 * name changes that move rows into and out of views, deletes, several in one transaction, clients
 * dropping and resuming): each client's first page + its filtered stream equals the filtered table, every
 * change it got concerned its view, said correctly how (enter/leave/stay), and came once; and its totals
 * (GET /orders/stats + the `stats` of every message) equal GET /orders/stats.
 */
let db: TestDatabase;
let svc: RunningService;
/** No memory of recent changes and reads of 3 changes: every resume reads the log, large transactions come in pieces. */
let lean: RunningService;

const NAMES = ['Laptop', 'lamp', 'Desk', 'LAPIS', 'Mouse', 'Émile', 'émile'];
const TERMS = ['lap', 'LA', 'o', 'É', 'mile', 'zzz'];

type Write =
  | { kind: 'insert'; status: number; customer: number; product: number; cents: number }
  | { kind: 'status'; pick: number; status: number }
  | { kind: 'rename'; pick: number; customer: number }
  | { kind: 'cents'; pick: number; cents: number }
  | { kind: 'delete'; pick: number };

const write: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), status: fc.nat(4), customer: fc.nat(6), product: fc.nat(6), cents: fc.nat(100_000) }),
  fc.record({ kind: fc.constant('status' as const), pick: fc.nat(), status: fc.nat(4) }),
  fc.record({ kind: fc.constant('rename' as const), pick: fc.nat(), customer: fc.nat(6) }),
  fc.record({ kind: fc.constant('cents' as const), pick: fc.nat(), cents: fc.nat(100_000) }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
);

type Step = { kind: 'txn'; writes: Write[] } | { kind: 'drop'; client: number } | { kind: 'resume'; client: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('txn' as const), writes: fc.array(write, { minLength: 1, maxLength: 4 }) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('drop' as const), client: fc.nat(2) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('resume' as const), client: fc.nat(2) }), weight: 1 },
);

const filterSpec = fc.record({
  status: fc.option(fc.uniqueArray(fc.constantFrom(...ORDER_STATUSES), { minLength: 1, maxLength: 3 }), { nil: undefined }),
  q: fc.option(fc.constantFrom(...TERMS), { nil: undefined }),
});

async function apply(sql: pg.PoolClient, w: Write): Promise<void> {
  const pick = `(SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET $1 % greatest(1, (SELECT count(*) FROM orders)))`;
  if (w.kind === 'insert') {
    await sql.query('INSERT INTO orders (customer_name, product_name, status, total_cents) VALUES ($1, $2, $3, $4)', [
      NAMES[w.customer],
      NAMES[w.product],
      ORDER_STATUSES[w.status],
      w.cents,
    ]);
  } else if (w.kind === 'status') await sql.query(`UPDATE orders SET status = $2 WHERE id = ${pick}`, [w.pick, ORDER_STATUSES[w.status]]);
  else if (w.kind === 'rename') await sql.query(`UPDATE orders SET customer_name = $2 WHERE id = ${pick}`, [w.pick, NAMES[w.customer]]);
  else if (w.kind === 'cents') await sql.query(`UPDATE orders SET total_cents = $2 WHERE id = ${pick}`, [w.pick, w.cents]);
  else await sql.query(`DELETE FROM orders WHERE id = ${pick}`, [w.pick]);
}

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query(
    `INSERT INTO orders (customer_name, product_name, status, total_cents)
     SELECT (ARRAY['Laptop','lamp','Desk','Mouse'])[1 + g % 4], (ARRAY['LAPIS','Émile','Desk'])[1 + g % 3],
            (ARRAY['pending','processing','shipped','delivered','cancelled'])[1 + g % 5], g * 100
     FROM generate_series(1, 30) g`,
  );
  svc = await startService(db.url, { FEED_POLL_MS: '300', WS_HEARTBEAT_MS: '1000' });
  lean = await startService(db.url, { FEED_POLL_MS: '300', WS_HEARTBEAT_MS: '1000', FEED_MEMORY_CHANGES: '0', FEED_BATCH_SIZE: '3' });
});

afterAll(async () => {
  await lean?.close();
  await svc?.close();
  await db?.drop();
});

function query(spec: { status?: string[] | undefined; q?: string | undefined }): string {
  const p = new URLSearchParams();
  if (spec.status) p.set('status', spec.status.join(','));
  if (spec.q) p.set('q', spec.q);
  return p.toString();
}

describe('filtered streams with live totals', () => {
  it('snapshot + filtered stream = the filtered table, and stats + deltas = GET /orders/stats', { timeout: 240_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(filterSpec, { minLength: 3, maxLength: 3 }),
        fc.array(step, { minLength: 2, maxLength: 12 }),
        async (specs, steps) => {
          const clients = specs.map((s) => new ViewClient(svc.url, svc.wsUrl, query(s)));
          try {
            for (const c of clients) {
              await c.load();
              await c.connect();
            }
            for (const s of steps) {
              if (s.kind === 'txn') {
                const tx = await db.sql.connect();
                try {
                  await tx.query('BEGIN');
                  for (const w of s.writes) await apply(tx, w);
                  await tx.query('COMMIT');
                } finally {
                  tx.release();
                }
              } else if (s.kind === 'drop') await clients[s.client]?.disconnect();
              else {
                const c = clients[s.client] as ViewClient;
                if (c.socket?.readyState !== 1) await c.connect();
              }
            }
            for (const c of clients) if (c.socket?.readyState !== 1) await c.connect();
            for (const [i, c] of clients.entries()) {
              await settled(c);
              const filter = (parseFilter({ status: specs[i]?.status?.join(','), q: specs[i]?.q }) as { filter: Filter }).filter;
              const keys = c.received.map((r) => r.key);
              expect(new Set(keys).size, `${c.filter}: a change came twice`).toBe(keys.length);
              for (const m of c.messages) {
                for (const ch of m.changes) {
                  const before = ch.old !== null && matches(filter, ch.old);
                  const after = ch.op !== 'delete' && matches(filter, ch.order);
                  const expected = before && after ? 'stay' : after ? 'enter' : before ? 'leave' : 'none';
                  if (c.filter === '') expect(ch.view).toBeUndefined();
                  else
                    expect(ch.view, `${c.filter}: ${JSON.stringify(ch)}`).toBe(
                      expected === 'none' ? 'a change outside the view' : expected,
                    );
                }
              }
            }
          } finally {
            for (const c of clients) await c.disconnect();
          }
        },
      ),
      { numRuns: 12 },
    );
  });

  it('sends a filtered client nothing it did not ask for, and tells it when a row leaves its view', async () => {
    const c = new ViewClient(svc.url, svc.wsUrl, 'status=processing&q=zebra');
    await c.load();
    await c.connect();
    try {
      const { rows } = await db.sql.query<{ id: string }>(
        "INSERT INTO orders (customer_name, product_name, status) VALUES ('Zebra Ltd', 'Pen', 'pending'), ('Other', 'Pen', 'processing') RETURNING id",
      );
      const [zebra, other] = rows.map((r) => Number(r.id));
      await db.sql.query("UPDATE orders SET status = 'processing' WHERE id = $1", [zebra]);
      await db.sql.query("UPDATE orders SET notes = 'packed' WHERE id = $1", [zebra]);
      await db.sql.query("UPDATE orders SET status = 'shipped' WHERE id = $1", [zebra]);
      await db.sql.query("UPDATE orders SET notes = 'gone' WHERE id IN ($1, $2)", [zebra, other]);
      await settled(c);
      expect(c.received.map((r) => `${r.key}:${r.view}`)).toEqual([`${zebra}:2:enter`, `${zebra}:3:stay`, `${zebra}:4:leave`]);
      // Totals moved for everything, the filter notwithstanding.
      expect(c.messages.filter((m) => m.stats).length).toBeGreaterThan(0);
    } finally {
      await c.disconnect();
    }
  });

  it('refuses a malformed filter before the upgrade, with a problem naming the parameter', async () => {
    for (const q of ['status=lost', `q=${'x'.repeat(201)}`, 'q=%00', 'stats=maybe']) {
      const refused = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const ws = new WebSocket(`${svc.wsUrl}?${q}`);
        ws.on('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
        });
        ws.on('open', () => reject(new Error(`${q} was accepted`)));
        ws.on('error', () => undefined);
      });
      expect(refused.status, q).toBe(400);
      expect(refused.type).toContain('application/problem+json');
      expect(JSON.parse(refused.body).errors[0].field, q).toMatch(/status|q|stats/);
    }
  });

  it('streams at most WS_MAX_VIEWS distinct views: one more is refused with 429 before the upgrade, a known one is not', async () => {
    const capped = await startService(db.url, { WS_MAX_VIEWS: '2' });
    const open: WebSocket[] = [];
    const upgrade = (query: string) =>
      new Promise<{ status: number; type?: string }>((resolve) => {
        const ws = new WebSocket(`${capped.wsUrl}?${query}`);
        ws.on('open', () => {
          open.push(ws);
          resolve({ status: 101 });
        });
        ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']) }));
        ws.on('error', () => undefined);
      });
    try {
      expect((await upgrade('status=pending')).status).toBe(101);
      expect((await upgrade('q=lap')).status).toBe(101);
      const third = await upgrade('q=desk');
      expect(third.status).toBe(429);
      expect(third.type).toContain('application/problem+json');
      // The same views, however written, are not new ones.
      expect((await upgrade('status=pending,pending')).status).toBe(101);
      expect((await upgrade('q=LAP')).status).toBe(101);
      expect(capped.service.hub.viewCount).toBe(2);
    } finally {
      for (const ws of open) ws.terminate();
      await capped.close();
    }
  });
});
