import type pg from 'pg';
import type { Order } from '../src/contract/protocol.js';
import { checkClient, isClean, type LoggedChange, type Report, readHistory, readTable, settle } from '../test/helpers/feed-client.js';
import type { SoakClient } from './clients.js';
import { DATABASE_FAULTS, FAULT_KINDS, type FaultRecord, INSTANCE_FAULTS } from './faults.js';
import type { Slope } from './sampler.js';
import type { Ack, HttpError } from './workload.js';

/**
 * The verdict. Every client against the committed history and the table (test/helpers/feed-client.ts:
 * lost, duplicated, interleaved, unknown, view mismatches; a client that left early is judged only on
 * what it received), every acknowledged REST write in the database exactly once, no 5xx but a 503
 * inside a database or instance fault's window, no instance dying on
 * its own, no connection left behind, no resource growth. Each violation names the client, the order
 * and the fault that preceded it.
 */
export interface Violation {
  kind: string;
  client?: string;
  orderId?: number;
  detail: string;
  /** ms since the start, when known. */
  at?: number;
  precedingFault?: string;
}

export interface Thresholds {
  rssMiBPerMin: number;
  fdsPerMin: number;
  /** Slopes are judged on series at least this long; shorter ones are reported, not judged. */
  minSpanSec: number;
  poolMax: number;
  /** Service instances running at the end: each should hold one listener connection. */
  instances: number;
}

/** Grace after a fault's recovery during which its errors still count as its own. */
const GRACE_MS = 5000;

export function precedingFault(faults: FaultRecord[], at: number | undefined): string | undefined {
  if (at === undefined) return undefined;
  const before = faults.filter((f) => f.at <= at);
  const f = before[before.length - 1];
  return f ? `${f.kind} at ${(f.at / 1000).toFixed(1)} s (${f.detail})` : 'none (before the first fault)';
}

function within(faults: FaultRecord[], at: number, kinds: ReadonlySet<string>): boolean {
  return faults.some(
    (f) => kinds.has(f.kind) && at >= f.at - 500 && at <= (f.recoveredAt ?? f.endedAt ?? Number.POSITIVE_INFINITY) + GRACE_MS,
  );
}

async function changeTimes(admin: pg.Pool, keys: string[], started: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (keys.length === 0) return out;
  const ids = keys.map((k) => Number(k.split(':')[0]));
  const { rows } = await admin.query<{ key: string; at: string }>(
    `SELECT order_id || ':' || version AS key, (extract(epoch FROM changed_at) * 1000)::bigint AS at FROM order_changes WHERE order_id = ANY($1)`,
    [ids],
  );
  for (const r of rows) out.set(r.key, Number(r.at) - started);
  return out;
}

export async function checkClients(
  admin: pg.Pool,
  clients: SoakClient[],
  faults: FaultRecord[],
  started: number,
  timeoutMs: number,
): Promise<{ reports: Report[]; violations: Violation[]; delivered: number }> {
  const active = clients.filter((c) => c.leftAt === undefined);
  const reports = await settle(
    admin,
    active.map((c) => c.client),
    timeoutMs,
  );
  const history = await readHistory(admin);
  const table = await readTable(admin);
  for (const c of clients.filter((x) => x.leftAt !== undefined)) reports.push(judgeClient(c, history, table));
  const keys = reports.filter((r) => !isClean(r)).flatMap(keysOf);
  const times = await changeTimes(admin, keys, started);
  const violations = violationsFrom(reports, times, faults);
  const delivered = clients.reduce((n, c) => n + c.client.epochs.reduce((m, e) => m + e.received.length, 0), 0);
  return { reports, violations, delivered };
}

const keysOf = (r: Report) => [...r.lost, ...r.duplicated, ...r.unknown, ...r.outOfOrder.map((o) => o.split(' ')[0] as string)];

/**
 * One client against the committed history and the table (test/helpers/feed-client.ts, checkClient). A
 * client that left early is judged only on what it received: nothing twice, nothing unknown, nothing
 * interleaved (what it missed after leaving is not lost, and its view is stale on purpose).
 */
export function judgeClient(c: SoakClient, history: LoggedChange[], table: Map<number, Order>): Report {
  const r = checkClient(c.client, history, table);
  return c.leftAt === undefined ? r : { ...r, lost: [], viewMismatches: [] };
}

/** Every finding of every report as a violation naming the client, the order, when the change was written and the fault before it. */
export function violationsFrom(reports: Report[], times: Map<string, number>, faults: FaultRecord[]): Violation[] {
  const violations: Violation[] = [];
  for (const r of reports.filter((x) => !isClean(x))) {
    const add = (kind: string, key: string) => {
      const k = key.split(' ')[0] as string;
      const at = times.get(k);
      violations.push({
        kind,
        client: r.client,
        orderId: Number(k.split(':')[0]),
        detail: key,
        at,
        precedingFault: precedingFault(faults, at),
      });
    };
    for (const k of r.lost) add('lost', k);
    for (const k of r.duplicated) add('duplicated', k);
    for (const k of r.outOfOrder) add('interleaved', k);
    for (const k of r.unknown) add('unknown', k);
    for (const id of r.viewMismatches)
      violations.push({ kind: 'view-mismatch', client: r.client, orderId: id, detail: `order ${id} shown differently from the table` });
  }
  return violations;
}

/** Each acknowledged write made exactly one change, the one its answer named. */
export async function checkAcks(admin: pg.Pool, acks: Ack[], faults: FaultRecord[]): Promise<Violation[]> {
  const violations: Violation[] = [];
  const { rows } = await admin.query<{ note: string; op: string; id: string; version: number }>(
    `SELECT row_data->>'notes' AS note, op, order_id AS id, version FROM order_changes
     WHERE row_data->>'notes' LIKE 'rest-%' AND op <> 'delete' AND (old_data IS NULL OR old_data->>'notes' IS DISTINCT FROM row_data->>'notes')`,
  );
  const byNote = new Map<string, { op: string; id: number; version: number }[]>();
  for (const r of rows) {
    const list = byNote.get(r.note) ?? [];
    list.push({ op: r.op, id: Number(r.id), version: r.version });
    byNote.set(r.note, list);
  }
  const deletes = await admin.query<{ id: string; n: number }>(
    "SELECT order_id AS id, count(*)::int AS n FROM order_changes WHERE op = 'delete' GROUP BY 1",
  );
  const deleted = new Map(deletes.rows.map((r) => [Number(r.id), r.n]));
  for (const a of acks) {
    const fail = (detail: string) =>
      violations.push({
        kind: 'rest-write',
        orderId: a.id,
        detail: `${a.kind} ${a.key}: ${detail}`,
        at: a.at,
        precedingFault: precedingFault(faults, a.at),
      });
    if (a.kind === 'delete') {
      const n = deleted.get(a.id) ?? 0;
      if (n !== 1) fail(`acknowledged delete, ${n} delete changes in the log`);
      continue;
    }
    const made = byNote.get(a.key) ?? [];
    if (made.length !== 1) fail(`acknowledged, ${made.length} changes carry its key (${JSON.stringify(made)})`);
    else if (made[0]?.id !== a.id || made[0]?.version !== a.version || (a.kind === 'create') !== (made[0]?.op === 'insert'))
      fail(`answer said order ${a.id} v${a.version}, the log has ${JSON.stringify(made[0])}`);
  }
  // A key that made a change twice, acknowledged or not, is a duplicate write.
  for (const [note, made] of byNote)
    if (made.length > 1) violations.push({ kind: 'rest-write', orderId: made[0]?.id, detail: `${note} applied ${made.length} times` });
  return violations;
}

export interface Latency {
  /** Changes measured (client × change). */
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Commit → client outside fault windows: for every steady client (no deliberate pauses or absences)
 * and every change a REST write made (a single-statement transaction, so its row's `changed_at`, the
 * trigger's clock_timestamp(), is within a millisecond or two of its commit), the time from `changed_at`
 * to the change's arrival at the client; changes written from 500 ms before a fault began until 5 s after
 * it recovered are left out. Same machine, same clock.
 */
export async function commitToClient(admin: pg.Pool, clients: SoakClient[], faults: FaultRecord[], started: number): Promise<Latency> {
  const { rows } = await admin.query<{ key: string; at: string }>(
    `SELECT order_id || ':' || version AS key, (extract(epoch FROM changed_at) * 1000)::bigint AS at FROM order_changes
     WHERE row_data->>'notes' LIKE 'rest-%' AND op <> 'delete' AND (old_data IS NULL OR old_data->>'notes' IS DISTINCT FROM row_data->>'notes')`,
  );
  const all = new Set(FAULT_KINDS as readonly string[]);
  const committed = new Map<string, number>();
  for (const r of rows) if (!within(faults, Number(r.at) - started, all)) committed.set(r.key, Number(r.at));
  const histogram = new Uint32Array(120_001);
  let samples = 0;
  let maxMs = 0;
  for (const c of clients) {
    if (c.role !== 'steady') continue;
    for (const [key, arrived] of c.client.arrivedAt) {
      const at = committed.get(key);
      if (at === undefined) continue;
      const ms = Math.max(0, Math.min(120_000, Math.round(arrived - at)));
      histogram[ms] = (histogram[ms] ?? 0) + 1;
      samples++;
      maxMs = Math.max(maxMs, ms);
    }
  }
  const quantile = (q: number) => {
    const target = Math.ceil(samples * q);
    let seen = 0;
    for (let ms = 0; ms < histogram.length; ms++) {
      seen += histogram[ms] ?? 0;
      if (seen >= target) return ms;
    }
    return maxMs;
  };
  return { samples, p50Ms: samples ? quantile(0.5) : 0, p99Ms: samples ? quantile(0.99) : 0, maxMs };
}

export function checkHttp(errors: HttpError[], faults: FaultRecord[]): { violations: Violation[]; byStatus: Record<string, number> } {
  const violations: Violation[] = [];
  const byStatus: Record<string, number> = {};
  for (const e of errors) {
    byStatus[e.status] = (byStatus[e.status] ?? 0) + 1;
    // A 502 or 504 is nginx finding no instance to answer: never acceptable, since the writers' requests
    // carry an Idempotency-Key and deploy/nginx.conf replays those on the other instance.
    const ok = e.status === 503 && (within(faults, e.at, DATABASE_FAULTS) || within(faults, e.at, INSTANCE_FAULTS));
    if (!ok)
      violations.push({
        kind: `http-${e.status}`,
        detail: `${e.method} ${e.path}: ${e.detail}`,
        at: e.at,
        precedingFault: precedingFault(faults, e.at),
      });
  }
  return { violations, byStatus };
}

export function checkResources(slopes: Slope[], endConnections: Record<string, number>, t: Thresholds): Violation[] {
  const violations: Violation[] = [];
  for (const s of slopes) {
    if (s.spanSec < t.minSpanSec) continue;
    if (s.rssMiBPerMin > t.rssMiBPerMin)
      violations.push({
        kind: 'rss-growth',
        detail: `${s.series}: ${s.rssMiBPerMin.toFixed(2)} MiB/min over ${s.spanSec} s (limit ${t.rssMiBPerMin})`,
      });
    if (s.otherFdsPerMin > t.fdsPerMin)
      violations.push({
        kind: 'fd-growth',
        detail: `${s.series}: ${s.otherFdsPerMin.toFixed(2)} fds/min besides its WebSocket clients over ${s.spanSec} s (limit ${t.fdsPerMin})`,
      });
  }
  const count = (app: string, state?: string) =>
    Object.entries(endConnections)
      .filter(([k]) => k.startsWith(`${app}/`) && (state === undefined || k === `${app}/${state}`))
      .reduce((n, [, v]) => n + v, 0);
  if (count('orders-listener') !== t.instances)
    violations.push({
      kind: 'connections',
      detail: `${count('orders-listener')} listener connections at the end (expected ${t.instances})`,
    });
  if (count('orders-api') > t.instances * t.poolMax)
    violations.push({
      kind: 'connections',
      detail: `${count('orders-api')} pool connections at the end (at most ${t.instances * t.poolMax})`,
    });
  for (const app of ['orders-api', 'orders-listener']) {
    const stuck = count(app, 'idle in transaction') + count(app, 'idle in transaction (aborted)');
    if (stuck > 0) violations.push({ kind: 'connections', detail: `${stuck} ${app} connections idle in transaction at the end` });
  }
  return violations;
}
