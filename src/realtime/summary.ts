import type { LoggedChange, RowFacts } from '../feed/change-log.js';
import type { Filter } from '../filter/filter.js';
import { matches } from '../filter/match.js';

/**
 * Live totals: what a run of changes does to `GET /orders/stats` (counts and cents per status, orders
 * created per minute), so that a client holding stats read at cursor C and adding the `stats` of every
 * message after C has exactly what `GET /orders/stats` would say now, whatever its stream's filter.
 * A credential's scope applies to totals as it does to `GET /orders/stats`: a row counts while it is
 * in the scope. An update never changes `created_at` (migrations/0001), so per-minute counts move only
 * with inserts and deletes (and rows entering or leaving a scope).
 */
export interface SummaryDelta {
  /** status → change of count and of cents (BigInt: sums of cents may pass 2^53). */
  byStatus: Map<string, { count: number; cents: bigint }>;
  /** minute ('YYYY-MM-DDTHH:MM:00Z', of created_at) → change of the number of orders created in it. */
  perMinute: Map<string, number>;
}

export function emptyDelta(): SummaryDelta {
  return { byStatus: new Map(), perMinute: new Map() };
}

function add(d: SummaryDelta, row: RowFacts, sign: 1 | -1): void {
  const s = d.byStatus.get(row.status) ?? { count: 0, cents: 0n };
  s.count += sign;
  s.cents += BigInt(sign * row.total_cents);
  d.byStatus.set(row.status, s);
  const minute = `${row.created_at.slice(0, 16)}:00Z`;
  d.perMinute.set(minute, (d.perMinute.get(minute) ?? 0) + sign);
}

/** Adds the effect of these changes, as seen through `scope`, to `d`. */
export function addChanges(d: SummaryDelta, changes: readonly LoggedChange[], scope: Filter): void {
  for (const c of changes) {
    if (c.old && matches(scope, c.old)) add(d, c.old, -1);
    if (c.row && matches(scope, c.row)) add(d, c.row, 1);
  }
}

export function mergeInto(d: SummaryDelta, other: SummaryDelta): void {
  for (const [status, s] of other.byStatus) {
    const t = d.byStatus.get(status) ?? { count: 0, cents: 0n };
    t.count += s.count;
    t.cents += s.cents;
    d.byStatus.set(status, t);
  }
  for (const [minute, n] of other.perMinute) d.perMinute.set(minute, (d.perMinute.get(minute) ?? 0) + n);
}

/**
 * The delta as the `stats` field of a message, only what changed: `{"by_status":{"pending":{"count":1,
 * "total_cents":500}},"per_minute":{"2026-12-01T05:04:00Z":1}}`; null when nothing did.
 */
export function deltaJson(d: SummaryDelta): string | null {
  const statuses: string[] = [];
  for (const [status, s] of d.byStatus) {
    if (s.count !== 0 || s.cents !== 0n) statuses.push(`${JSON.stringify(status)}:{"count":${s.count},"total_cents":${s.cents}}`);
  }
  const minutes: string[] = [];
  for (const [minute, n] of [...d.perMinute].sort(([a], [b]) => (a < b ? -1 : 1))) if (n !== 0) minutes.push(`"${minute}":${n}`);
  if (statuses.length === 0 && minutes.length === 0) return null;
  return `{"by_status":{${statuses.join(',')}},"per_minute":{${minutes.join(',')}}}`;
}
