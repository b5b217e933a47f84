import { createHmac, timingSafeEqual } from 'node:crypto';
import { type LoggedChange, loggedChange } from './change-log.js';
import { type Cursor, cursor, has, MAX_XIP, parseSnapshot, type Snapshot, snapshot, snapshotContains, snapshotUnion } from './cursor.js';

/**
 * Summaries: a small transaction's changes, carried by the notification its commit sends
 * (migrations/0014_feed_summaries.sql), so the feed can hand them out without reading the log. This
 * module says what a summary says (parse, verify) and when the feed may trust it (extend); the feed
 * reads the log whenever it may not, so a summary can only save a read, never decide what is lost.
 *
 * When a summary may extend the head without a read: notifications arrive in commit order, and a
 * summary carries the snapshot its transaction X saw just before committing. Every transaction that
 * committed before X changed a row X then changed is in that snapshot, so if the head has everything
 * that snapshot has (besides X), handing out X next keeps every row's changes in order. Transactions that
 * send no summary (the service's own writes, transactions on other tables or databases) make the
 * condition fail until a read has them: one read, then summaries again.
 *
 * X goes into the head as a partial transaction (up to its last change summarised), not whole, and
 * only a read closes it (the read's snapshot has X committed, and it fetches any change of X past the
 * partial): under SET CONSTRAINTS … IMMEDIATE a transaction sends a summary per statement, and its
 * later statements may send none (orders.skip_notify, or a session that turns its own summaries off),
 * so no notification can prove a transaction has no more changes; a read can. The feed reads once
 * OPEN_SUMMARIES_READ transactions are open, so cursors stay short and a summarised transaction is
 * closed within a few more commits. For the order condition above, open transactions count as had
 * (they are, up to what they announced): a transaction that hid its later changes this way may see a
 * later transaction's change to the same row go out first; nothing is lost, and clients apply by version.
 */
export interface Summary {
  xid: number;
  /** What X saw committed just before it committed (txid_current_snapshot()). */
  snapshot: Snapshot;
  /** X's changes so far, in seq order. */
  changes: LoggedChange[];
}

/** Open (summarised, not yet read) transactions at which the feed reads, closing them. */
export const OPEN_SUMMARIES_READ = 4;
/** Beyond this many open, a summary waits for that read (every open one is a `:xid-seq` in cursors). */
export const MAX_OPEN_SUMMARIES = 8;

/** The head's snapshot, with its open (summarised) transactions counted as had; undefined if that is unwieldy. */
function withOpenHad(head: Cursor): Snapshot | undefined {
  const open = new Set(head.partials.map((p) => p.xid));
  const { xmax, xip } = head.snapshot;
  let top = xmax;
  for (const x of open) top = Math.max(top, x + 1);
  if (top - xmax > MAX_XIP) return undefined;
  const lacking = xip.filter((x) => !open.has(x));
  for (let x = xmax; x < top; x++) if (!open.has(x)) lacking.push(x);
  return snapshot(top, lacking);
}

const MAC_HEX = 64;
const MAC = /^[0-9a-f]{64}$/;
const ID = /^\d{1,16}$/;

/**
 * The summary in a notification's payload, if it is one this key signed; undefined for the doorbell,
 * anything malformed and anything unsigned or signed with another key (a forged or a stale summary).
 */
export function parseSummary(payload: string, key: Buffer): Summary | undefined {
  if (!payload.startsWith('1 ') || payload[2 + MAC_HEX] !== ' ') return undefined;
  // Exactly as encode(…, 'hex') writes it: Buffer's hex decoding would accept other spellings of it.
  const hex = payload.slice(2, 2 + MAC_HEX);
  if (!MAC.test(hex)) return undefined;
  const mac = Buffer.from(hex, 'hex');
  const body = payload.slice(3 + MAC_HEX);
  const expected = createHmac('sha256', key).update(body, 'utf8').digest();
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
  const lines = body.split('\n');
  const head = (lines[0] as string).split(' ');
  if (head.length !== 2 || !ID.test(head[0] as string)) return undefined;
  const xid = Number(head[0]);
  let snap: Snapshot;
  try {
    snap = parseSnapshot(head[1] as string);
  } catch {
    return undefined;
  }
  const changes: LoggedChange[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const a = line.indexOf(' ');
    const b = line.indexOf(' ', a + 1);
    const seqText = line.slice(0, a);
    const atMs = Number(line.slice(a + 1, b));
    if (a < 0 || b < 0 || !ID.test(seqText) || !Number.isFinite(atMs)) return undefined;
    const seq = Number(seqText);
    const prev = changes[changes.length - 1];
    if (prev && seq <= prev.seq) return undefined;
    changes.push(loggedChange(xid, seq, atMs, line.slice(b + 1)));
  }
  return changes.length > 0 ? { xid, snapshot: snap, changes } : undefined;
}

export type Step =
  /** The head has every change of the summary already (a read was first). */
  | { kind: 'had' }
  /** Hand these out; the head becomes `to`. */
  | { kind: 'take'; to: Cursor; changes: LoggedChange[] }
  /** The summary cannot be trusted alone: read the log. */
  | { kind: 'read' };

/**
 * What to do with a summary, given the head. The head's own open transactions (partials) count as had
 * here: each is a summarised transaction whose summaries all came before this one if this one's
 * snapshot has it committed (see above). Call only while no read is running or due (feed.ts).
 */
export function extend(head: Cursor, summary: Summary): Step {
  const { xid } = summary;
  const last = (summary.changes[summary.changes.length - 1] as LoggedChange).seq;
  if (has(head, xid, last)) return { kind: 'had' };
  const had = withOpenHad(head);
  if (!had) return { kind: 'read' };
  // What X saw committed, without X itself.
  const before = snapshot(summary.snapshot.xmax, [...summary.snapshot.xip, xid]);
  if (!snapshotContains(had, before)) return { kind: 'read' };
  // Everything either has, except the open transactions, which stay partial until a read.
  const open = [...head.partials.map((p) => p.xid), xid];
  const union = snapshotUnion(head.snapshot, before);
  const to = cursor(snapshot(union.xmax, [...union.xip, ...open]), [...head.partials, { xid, seq: last }], head.history);
  if (to.partials.length > MAX_OPEN_SUMMARIES) return { kind: 'read' };
  return { kind: 'take', to, changes: summary.changes.filter((c) => !has(head, xid, c.seq)) };
}
