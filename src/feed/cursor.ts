/**
 * Feed cursors are PostgreSQL snapshots. A cursor says which changes a client has: every change of every
 * transaction visible in its snapshot (text `xmin:xmax:xip,…`, as txid_current_snapshot() prints it),
 * plus, rarely, the first changes of a transaction too large for one message (`:xid-seq,…` after the
 * snapshot: that transaction's changes up to seq). A transaction's changes become visible exactly when
 * it commits, so "what the client has" never depends on transactions still running: a reader takes a
 * new snapshot S₂ in the same statement as its rows and hands out what S₂ sees and the previous cursor
 * does not (PgQ cuts its batches between two ticks the same way).
 *
 * This module is the algebra on those cursors, pure and total: membership, union, containment and
 * truncation. Everything else (the feed's reads, the hub's filtering, catch-up, retention, resume on
 * another instance) is written with these functions and nothing else.
 *
 * Snapshot semantics, for a transaction id x: had ⇔ x < xmin, or x < xmax and x ∉ xip. Snapshots built
 * here are normalised (xip sorted, unique, inside [xmin, xmax); xmin = min(xip ∪ {xmax})), so two
 * cursors that have the same changes have the same text.
 */
export interface Snapshot {
  readonly xmin: number;
  readonly xmax: number;
  /** Sorted ascending, unique, each in [xmin, xmax). */
  readonly xip: readonly number[];
}

/** The first changes (seq ≤ seq) of a transaction the snapshot does not have. */
export interface Partial {
  readonly xid: number;
  readonly seq: number;
}

export interface Cursor {
  readonly snapshot: Snapshot;
  /** Sorted by xid, at most one per xid, none for a transaction the snapshot has. */
  readonly partials: readonly Partial[];
  /**
   * The database history it belongs to (`@tag` in the text; migrations/0010): a cursor of another
   * history (a restored or failed-over database) is reset, not trusted. Absent in older cursors.
   */
  readonly history?: string;
}

/**
 * A cursor text is refused (reset, cursor-malformed) beyond these, so the work per cursor stays bounded.
 * 1,000 transactions running at once in the cluster (of 10-digit ids) still fit, inside the 16 KiB a
 * request line can have. A crafted cursor at the partials limit can grow past it by a union; resuming
 * with that is refused too (a reset, never a gap).
 */
export const MAX_CURSOR_LENGTH = 16_000;
export const MAX_XIP = 1000;
const MAX_PARTIALS = 16;

/** No change at all (PostgreSQL assigns normal transaction ids from 3). */
export const EMPTY: Cursor = { snapshot: { xmin: 1, xmax: 1, xip: [] }, partials: [] };

const MAX_ID = Number.MAX_SAFE_INTEGER;

function id(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

/** The index of the first element ≥ x in a sorted array. */
function lowerIndex(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function inSorted(sorted: readonly number[], x: number): boolean {
  const i = lowerIndex(sorted, x);
  return i < sorted.length && sorted[i] === x;
}

/**
 * A snapshot from its parts: xip sorted, deduplicated, clipped to below xmax; xmin its lowest. A run of
 * xip entries just below xmax says nothing a lower xmax does not (`5:7:5,6` has what `5:5:` has), so
 * xmax comes down past it: otherwise the same changes would have two texts.
 */
export function snapshot(xmax: number, xip: Iterable<number>): Snapshot {
  const list = [...new Set(xip)].filter((x) => x < xmax).sort((a, b) => a - b);
  let top = xmax;
  while (list.length > 0 && list[list.length - 1] === top - 1) {
    list.pop();
    top--;
  }
  return { xmin: list.length > 0 ? (list[0] as number) : top, xmax: top, xip: list };
}

/** Whether the snapshot has (every change of) transaction x. */
export function snapshotHas(s: Snapshot, x: number): boolean {
  return x < s.xmin || (x < s.xmax && !inSorted(s.xip, x));
}

/** Whether the cursor has the change (x, seq). O(log |xip|). */
export function has(c: Cursor, x: number, seq: number): boolean {
  if (snapshotHas(c.snapshot, x)) return true;
  for (const p of c.partials) if (p.xid === x) return seq <= p.seq;
  return false;
}

function partialsOf(s: Snapshot, candidates: readonly Partial[]): Partial[] {
  const byXid = new Map<number, number>();
  for (const p of candidates) {
    // seq starts at 1 (an identity column): a partial up to seq 0 has nothing (`X-0`, an old position).
    if (p.seq < 1 || snapshotHas(s, p.xid)) continue;
    byXid.set(p.xid, Math.max(byXid.get(p.xid) ?? -1, p.seq));
  }
  return [...byXid].sort((a, b) => a[0] - b[0]).map(([xid, seq]) => ({ xid, seq }));
}

export function cursor(s: Snapshot, partials: readonly Partial[] = [], history?: string): Cursor {
  return history === undefined
    ? { snapshot: s, partials: partialsOf(s, partials) }
    : { snapshot: s, partials: partialsOf(s, partials), history };
}

/** The same changes, said to belong to this history. */
export function inHistory(c: Cursor, history: string | undefined): Cursor {
  return cursor(c.snapshot, c.partials, history);
}

/** The transactions either snapshot has. O(|xip|·log). */
export function snapshotUnion(a: Snapshot, b: Snapshot): Snapshot {
  const [lo, hi] = a.xmax <= b.xmax ? [a, b] : [b, a];
  // Below hi.xmax a transaction is missing from the union only if hi lacks it (so it is in hi.xip)
  // and lo lacks it too (it is in lo.xip, or at or above lo.xmax).
  return snapshot(
    hi.xmax,
    hi.xip.filter((x) => x >= lo.xmax || inSorted(lo.xip, x)),
  );
}

/** Everything either cursor has. */
export function union(a: Cursor, b: Cursor): Cursor {
  const s = snapshotUnion(a.snapshot, b.snapshot);
  return cursor(s, [...a.partials, ...b.partials], a.history ?? b.history);
}

/** Whether snapshot a has every transaction b has. */
export function snapshotContains(a: Snapshot, b: Snapshot): boolean {
  if (a.xmax < b.xmax) {
    // b must lack every transaction in [a.xmax, b.xmax): all of them in b.xip.
    const from = lowerIndex(b.xip, a.xmax);
    if (b.xip.length - from !== b.xmax - a.xmax) return false;
  }
  // Below both xmax, whatever a lacks b must lack too.
  const limit = Math.min(a.xmax, b.xmax);
  for (const x of a.xip) {
    if (x >= limit) break;
    if (!inSorted(b.xip, x)) return false;
  }
  return true;
}

/** Whether cursor a has every change cursor b has. */
export function contains(a: Cursor, b: Cursor): boolean {
  if (!snapshotContains(a.snapshot, b.snapshot)) return false;
  return b.partials.every((p) => has(a, p.xid, p.seq));
}

export function equals(a: Cursor, b: Cursor): boolean {
  return formatCursor(a) === formatCursor(b);
}

/** The transactions below `limit` that the snapshot has (and none at or above it). */
export function truncate(s: Snapshot, limit: number): Snapshot {
  if (limit >= s.xmax) return s;
  return snapshot(Math.max(limit, 0), s.xip);
}

/** What the cursor has of transactions below `limit`. */
export function prefix(c: Cursor, limit: number): Cursor {
  return cursor(
    truncate(c.snapshot, limit),
    c.partials.filter((p) => p.xid < limit),
    c.history,
  );
}

export function formatSnapshot(s: Snapshot): string {
  return `${s.xmin}:${s.xmax}:${s.xip.join(',')}`;
}

export function formatCursor(c: Cursor): string {
  const base = formatSnapshot(c.snapshot);
  const text = c.partials.length === 0 ? base : `${base}:${c.partials.map((p) => `${p.xid}-${p.seq}`).join(',')}`;
  return c.history === undefined ? text : `${text}@${c.history}`;
}

function idList(text: string, max: number): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(',');
  if (parts.length > max) return undefined;
  const out: number[] = [];
  for (const part of parts) {
    const x = id(part);
    if (x === undefined) return undefined;
    out.push(x);
  }
  return out;
}

/**
 * Parses a cursor: the snapshot form, or one handed out by earlier releases. Those said, under the rule
 * of the time (hand out only transactions older than every running one), "every transaction below xid,
 * and this one up to seq" (`xid-seq`), or that plus what a GET /orders snapshot had (`xid-seq:xmax:xip`);
 * both convert exactly. Undefined for anything malformed or over the limits.
 */
export function parseCursor(text: string): Cursor | undefined {
  if (text.length > MAX_CURSOR_LENGTH) return undefined;
  const at = text.indexOf('@');
  if (at >= 0) {
    const history = text.slice(at + 1);
    if (!/^[0-9a-f]{1,8}$/.test(history)) return undefined;
    const c = parseCursor(text.slice(0, at));
    return c && inHistory(c, history);
  }
  const legacy = /^(\d+)-(\d+)$/.exec(text);
  if (legacy) {
    const xid = id(legacy[1]);
    const seq = id(legacy[2]);
    if (xid === undefined || seq === undefined) return undefined;
    return cursor(snapshot(xid, []), [{ xid, seq }]);
  }
  const m = /^(\d+)(?:-(\d+))?:(\d+):([\d,]*)(?::([\d,-]+))?$/.exec(text);
  if (!m) return undefined;
  const xmin = id(m[1]);
  const xmax = id(m[3]);
  const xip = idList(m[4] as string, MAX_XIP);
  if (xmin === undefined || xmax === undefined || xip === undefined || xmin > xmax) return undefined;
  if (xip.some((x) => x < xmin || x >= xmax)) return undefined;
  if (m[2] !== undefined) {
    // Legacy `xid-seq:xmax:xip`: everything below xid, xid itself up to seq, and what the snapshot had.
    if (m[5] !== undefined) return undefined;
    const seq = id(m[2]);
    if (seq === undefined) return undefined;
    const s = snapshot(xmax, xip);
    return cursor(s, xip.includes(xmin) || xmin >= xmax ? [{ xid: xmin, seq }] : []);
  }
  // xmin may sit below the lowest xip (PostgreSQL's own snapshots can): transactions between are had.
  const s = snapshot(xmax, xip);
  if (m[5] === undefined) return cursor(s);
  const partials: Partial[] = [];
  const parts = (m[5] as string).split(',');
  if (parts.length > MAX_PARTIALS) return undefined;
  for (const part of parts) {
    const pm = /^(\d+)-(\d+)$/.exec(part);
    const xid = id(pm?.[1]);
    const seq = id(pm?.[2]);
    if (xid === undefined || seq === undefined) return undefined;
    partials.push({ xid, seq });
  }
  return cursor(s, partials);
}

/** The snapshot PostgreSQL printed (txid_snapshot text); throws on anything else (it comes from the database). */
export function parseSnapshot(text: string): Snapshot {
  const c = parseCursor(text);
  if (!c || c.partials.length > 0 || /-/.test(text)) throw new Error(`not a snapshot: ${text.slice(0, 100)}`);
  return c.snapshot;
}
