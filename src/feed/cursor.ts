/**
 * Feed cursors. A position `"<xid>-<seq>"` names one change in feed order (xid, seq): a client at it has
 * that change and everything before it. A snapshot `"<xmin>:<xmax>:<xip,…>"` (PostgreSQL's
 * txid_current_snapshot() text) is what GET /orders hands out: a client at it has exactly the changes
 * of transactions visible in that snapshot, which need not be a prefix of the feed (a transaction that
 * started later can commit earlier). Both are opaque to clients.
 */
export interface Position {
  xid: number;
  seq: number;
}

export type Cursor =
  | ({ kind: 'position' } & Position)
  | { kind: 'snapshot'; xmin: number; xmax: number; xip: ReadonlySet<number>; text: string };

export const ORIGIN: Position = { xid: 0, seq: 0 };

export function comparePositions(a: Position, b: Position): number {
  return a.xid - b.xid || a.seq - b.seq;
}

export function formatPosition(p: Position): string {
  return `${p.xid}-${p.seq}`;
}

const MAX_ID = Number.MAX_SAFE_INTEGER;

function id(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

export function parseCursor(text: string): Cursor | undefined {
  if (text.length > 20_000) return undefined;
  const pos = /^(\d+)-(\d+)$/.exec(text);
  if (pos) {
    const xid = id(pos[1] as string);
    const seq = id(pos[2] as string);
    return xid === undefined || seq === undefined ? undefined : { kind: 'position', xid, seq };
  }
  const snap = /^(\d+):(\d+):((?:\d+(?:,\d+)*)?)$/.exec(text);
  if (!snap) return undefined;
  const xmin = id(snap[1] as string);
  const xmax = id(snap[2] as string);
  if (xmin === undefined || xmax === undefined || xmin > xmax) return undefined;
  const xip = new Set<number>();
  for (const part of (snap[3] as string).split(',').filter(Boolean)) {
    const x = id(part);
    if (x === undefined || x < xmin || x >= xmax) return undefined;
    xip.add(x);
  }
  return { kind: 'snapshot', xmin, xmax, xip, text };
}

export function formatCursor(c: Cursor): string {
  return c.kind === 'position' ? formatPosition(c) : c.text;
}

/** Whether a client at cursor `c` already has the change at position `p`. */
export function hasChange(c: Cursor, p: Position): boolean {
  if (c.kind === 'position') return comparePositions(p, c) <= 0;
  return p.xid < c.xmin || (p.xid < c.xmax && !c.xip.has(p.xid));
}

/** Every change after this position may be missing from the client; none at or before it is. */
export function lowerBound(c: Cursor): Position {
  return c.kind === 'position' ? { xid: c.xid, seq: c.seq } : { xid: c.xmin, seq: 0 };
}

/** Past this position, hasChange(c, ·) is false for every change: the client needs no more filtering. */
export function upperBound(c: Cursor): Position {
  return c.kind === 'position' ? { xid: c.xid, seq: c.seq } : { xid: c.xmax, seq: 0 };
}
