/**
 * Feed cursors. A position `"<xid>-<seq>"` names one change in feed order (xid, seq): a client at it has
 * that change and everything before it. A snapshot `"<xmin>:<xmax>:<xip,…>"` (PostgreSQL's
 * txid_current_snapshot() text) is what GET /orders hands out: a client at it has exactly the changes
 * of transactions visible in that snapshot, which need not be a prefix of the feed (a transaction that
 * started later can commit earlier). Both are opaque to clients.
 *
 * A snapshot client that then receives changes of a transaction the snapshot saw in progress holds a
 * third shape, `"<xid>-<seq>:<xmax>:<xip,…>"`: everything up to that position, plus what the snapshot
 * saw below xmax. Neither a position nor the original snapshot says that exactly (the position would
 * resend what the snapshot had; the snapshot would resend what came since), so a resume from either
 * would deliver changes twice. A plain snapshot is this shape at position (xmin, 0).
 */
export interface Position {
  xid: number;
  seq: number;
}

export type Cursor =
  | ({ kind: 'position' } & Position)
  | {
      kind: 'snapshot';
      xmin: number;
      xmax: number;
      xip: ReadonlySet<number>;
      /** Everything at or before this position is had ((xmin, 0) for a snapshot straight from GET /orders). */
      through: Position;
      text: string;
    };

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
  const snap = /^(\d+)(?:-(\d+))?:(\d+):((?:\d+(?:,\d+)*)?)$/.exec(text);
  if (!snap) return undefined;
  const xmin = id(snap[1] as string);
  const seq = snap[2] === undefined ? 0 : id(snap[2]);
  const xmax = id(snap[3] as string);
  if (xmin === undefined || seq === undefined || xmax === undefined || xmin > xmax) return undefined;
  const xip = new Set<number>();
  for (const part of (snap[4] as string).split(',').filter(Boolean)) {
    const x = id(part);
    if (x === undefined || x < xmin || x >= xmax) return undefined;
    xip.add(x);
  }
  return { kind: 'snapshot', xmin, xmax, xip, through: { xid: xmin, seq }, text };
}

export function formatCursor(c: Cursor): string {
  return c.kind === 'position' ? formatPosition(c) : c.text;
}

/** Whether a client at cursor `c` already has the change at position `p`. */
export function hasChange(c: Cursor, p: Position): boolean {
  if (c.kind === 'position') return comparePositions(p, c) <= 0;
  return comparePositions(p, c.through) <= 0 || (p.xid < c.xmax && !c.xip.has(p.xid));
}

/** Every change after this position may be missing from the client; none at or before it is. */
export function lowerBound(c: Cursor): Position {
  return c.kind === 'position' ? { xid: c.xid, seq: c.seq } : c.through;
}

/** Past this position, hasChange(c, ·) is false for every change: the client needs no more filtering. */
export function upperBound(c: Cursor): Position {
  return c.kind === 'position' ? { xid: c.xid, seq: c.seq } : { xid: c.xmax, seq: 0 };
}

/**
 * The cursor of a client at `c` that has just received the change at `p` (which it lacked, and which
 * comes after everything it received before, in feed order). Transactions the snapshot saw in progress
 * and that are older than p have all been delivered by now, so they leave the in-progress list.
 */
export function advance(c: Cursor, p: Position): Cursor {
  if (c.kind === 'position' || comparePositions(p, upperBound(c)) >= 0) return { kind: 'position', xid: p.xid, seq: p.seq };
  const xip = new Set([...c.xip].filter((x) => x >= p.xid));
  const text = `${formatPosition(p)}:${c.xmax}:${[...xip].sort((a, b) => a - b).join(',')}`;
  return { kind: 'snapshot', xmin: p.xid, xmax: c.xmax, xip, through: { xid: p.xid, seq: p.seq }, text };
}
